/*
 * WebSocket framing (RFC 6455 section 5), server side: frames from the client are parsed and
 * unmasked, frames to the client are framed here. The opening handshake (HTTP Upgrade, the
 * Sec-WebSocket-Accept digest) belongs to the server; only the key's syntax is checked here.
 *
 *   frame = FIN:1 RSV:3 opcode:4 MASK:1 len7:7 [len16 | len64] [mask:4] payload
 *
 * The parser works on whole frames: ws_parse_frame() answers "incomplete, I need N bytes" until
 * the caller's buffer holds the header and the whole payload, then unmasks the payload IN PLACE
 * and returns the frame. It never allocates and never reads outside buf[0..len). Between frames
 * it keeps the state of a fragmented message (its opcode, its length so far and where the UTF-8
 * validation of a text message stands), so the rules spanning frames are checked here too:
 *
 *   - client frames must be masked (5.1); RSV1-3 must be 0 (no extension is negotiated)
 *   - opcodes 3-7 and 0xB-0xF are reserved; a continuation needs an open message, and a new
 *     text/binary frame must not arrive while one is open (5.4)
 *   - control frames (close, ping, pong) are not fragmented and carry at most 125 bytes (5.5);
 *     they may arrive between the fragments of a message
 *   - the 64-bit length has its most significant bit 0 (5.2). A length not in its shortest form
 *     is accepted (5.2 asks senders for the shortest; uWSGI and browsers accept the longer ones)
 *   - a message (the sum of its fragments) over max_message fails as soon as a header says so,
 *     before the payload arrives (close code 1009); so does a frame over INT_MAX bytes in all
 *     (its size would not fit the return value), whatever max_message says
 *   - text messages are valid UTF-8 (RFC 3629: no surrogates, no overlong forms, <= U+10FFFF),
 *     checked fragment by fragment, failing as early as the bytes allow (close code 1007)
 *   - a close frame's payload is empty or a valid status code (7.4) followed by UTF-8 reason
 */
#ifndef GYRE_PROTO_WEBSOCKET_H
#define GYRE_PROTO_WEBSOCKET_H

#include <stddef.h>
#include <stdint.h>

enum ws_opcode {
    WS_OP_CONTINUATION = 0x0,
    WS_OP_TEXT = 0x1,
    WS_OP_BINARY = 0x2,
    WS_OP_CLOSE = 0x8,
    WS_OP_PING = 0x9,
    WS_OP_PONG = 0xA,
};

/* Close status codes (RFC 6455 7.4.1) the server sends. */
enum ws_close_code {
    WS_CLOSE_NORMAL = 1000,
    WS_CLOSE_GOING_AWAY = 1001,
    WS_CLOSE_PROTOCOL_ERROR = 1002,
    WS_CLOSE_UNSUPPORTED = 1003,
    WS_CLOSE_NO_STATUS = 1005, /* never on the wire: "the close frame had no payload" */
    WS_CLOSE_BAD_DATA = 1007,  /* text that is not UTF-8 */
    WS_CLOSE_POLICY = 1008,
    WS_CLOSE_TOO_BIG = 1009, /* over --websocket-max-size */
    WS_CLOSE_INTERNAL_ERROR = 1011,
};

/* Results of ws_parse_frame(): > 0 is the size of the complete frame (header + payload). */
enum ws_status {
    WS_INCOMPLETE = 0,            /* need more bytes: frame->need says how many in all */
    WS_E_UNMASKED = -1,           /* a client frame without the MASK bit               (1002) */
    WS_E_RSV = -2,                /* RSV1, RSV2 or RSV3 set                             (1002) */
    WS_E_OPCODE = -3,             /* a reserved opcode                                  (1002) */
    WS_E_CONTROL_FRAGMENTED = -4, /* a control frame without FIN                        (1002) */
    WS_E_CONTROL_TOO_BIG = -5,    /* a control frame with more than 125 payload bytes   (1002) */
    WS_E_CONTINUATION = -6,       /* a continuation frame with no message open          (1002) */
    WS_E_INTERLEAVED = -7,        /* a text/binary frame while a message is still open  (1002) */
    WS_E_LENGTH = -8,             /* a 64-bit length with the most significant bit set  (1002) */
    WS_E_TOO_BIG = -9,            /* the message would exceed max_message               (1009) */
    WS_E_UTF8 = -10,              /* a text message, or a close reason, is not UTF-8    (1007) */
    WS_E_CLOSE_PAYLOAD = -11,     /* a close payload of 1 byte or an invalid status code(1002) */
};

/* The largest frame header: 2 + 8 (64-bit length) + 4 (mask). */
#define WS_MAX_HEADER 14
#define WS_MAX_CONTROL_PAYLOAD 125

struct ws_parser {
    uint64_t max_message; /* set by the caller: the largest message accepted, in bytes */
    /* The message in progress, kept by the parser between frames: */
    uint8_t msg_opcode;  /* WS_OP_TEXT or WS_OP_BINARY while a fragmented message is open, else 0 */
    uint64_t msg_len;    /* payload bytes of the open message's frames so far */
    uint32_t utf8_state; /* the UTF-8 validator's state across the text message's fragments */
};

struct ws_frame {
    uint8_t opcode;     /* the frame's own opcode (WS_OP_CONTINUATION for later fragments) */
    uint8_t msg_opcode; /* for data frames: the message's opcode (TEXT or BINARY); else = opcode */
    uint8_t fin;        /* 1 on the last frame of a message (always 1 for control frames) */
    uint8_t header_len; /* 2 to 14 */
    uint64_t payload_len;
    uint8_t *payload; /* into buf, unmasked in place; payload_len bytes */
    uint64_t need;    /* on WS_INCOMPLETE: the bytes needed for the whole frame once the length
                              is known (header_len + payload_len), else the bytes needed to know it
                              (2, then header_len); always > len and <= the frame's size. 0 on
                              other results */
};

/* Set p up for a new connection; max_message is the largest message accepted, in bytes. */
void ws_parser_init(struct ws_parser *p, uint64_t max_message);

/*
 * Parse the frame at the start of buf[0..len).
 *
 * Returns the frame's size (header + payload) once all of it is in buf, WS_INCOMPLETE while it
 * is not (frame->need: the total to wait for), or a negative enum ws_status (the connection
 * must then be closed with ws_status_close_code(status)). The checks that the header alone
 * allows (masking, opcodes, sizes, sequence) fail before the payload arrives. On success the
 * payload is unmasked in place and the parser's message state is advanced: a data frame with
 * fin = 1 completes its message (the caller assembles fragments; msg_opcode names the message's
 * type). A WS_INCOMPLETE answer changes nothing: call again with the same bytes, and more.
 *
 * Each byte is judged as it arrives: errors of byte 0 (RSV, opcode, FIN of a control frame,
 * the fragment sequence) come with 1 byte, those of byte 1 (MASK, control length) with 2, those
 * of the length (top bit, max_message) once it is in; so a prefix of a frame gives
 * WS_INCOMPLETE or the whole frame's result. The payload checks (UTF-8, close payload) wait
 * for the whole frame. The parser's state changes on success only; the buffer is written
 * (unmasked) once the frame is complete, so also when its payload then fails a check. The frame's
 * fields are filled as far as the bytes go on every result (for log lines); payload is NULL
 * unless the frame is returned.
 */
int ws_parse_frame(struct ws_parser *p, uint8_t *buf, size_t len, struct ws_frame *frame);

/* The close status code a failed parse must be answered with (1002, 1007 or 1009; 1000 for a
 * status >= 0, which is no failure). */
uint16_t ws_status_close_code(int status);
/* A short lowercase English description of a negative status, for log lines. */
const char *ws_strerror(int status);

/*
 * Write the header of a server frame (unmasked, as servers send) into out and return its size.
 * fin = 0 starts or continues a fragmented message. Lengths take their shortest form. Never
 * fails; payload_len must be < 2^63 (RFC 6455 5.2), as every payload in memory is.
 */
size_t ws_frame_header(uint8_t out[WS_MAX_HEADER], unsigned opcode, int fin, uint64_t payload_len);

/*
 * A client-side frame header, masked with mask[4] (the caller masks the payload with
 * ws_mask()): for tests, fuzzing and bench clients.
 */
size_t ws_client_frame_header(uint8_t out[WS_MAX_HEADER], unsigned opcode, int fin,
                              uint64_t payload_len, const uint8_t mask[4]);
/* XOR buf[0..len) with mask, starting at byte `offset` of the payload (masking is its own inverse). */
void ws_mask(uint8_t *buf, size_t len, const uint8_t mask[4], uint64_t offset);

/*
 * A close frame's payload: fills *code (WS_CLOSE_NO_STATUS when empty) and the reason's slice.
 * Returns 0, or WS_E_CLOSE_PAYLOAD (1 byte, or a code RFC 6455 7.4 forbids on the wire) or
 * WS_E_UTF8 (the reason). ws_parse_frame() has already checked this for close frames it returns.
 */
int ws_close_payload(const uint8_t *payload, size_t len, uint16_t *code, const uint8_t **reason,
                     size_t *reason_len);
/* Whether code may appear in a close frame: 1000-1003, 1007-1014, 3000-4999. 1012-1014 are
 * IANA-registered since RFC 6455 (service restart, try again later, bad gateway). */
int ws_close_code_valid(unsigned code);

/*
 * Whether buf[0..len) is a valid Sec-WebSocket-Key: the base64 of 16 bytes (24 characters,
 * "==" padding), leading/trailing spaces and tabs allowed (they are optional whitespace). The
 * 22nd character's 4 bits that decoding drops are not checked (RFC 6455 asks for 16 bytes).
 */
int ws_key_valid(const char *buf, size_t len);

/* The incremental UTF-8 validator the parser uses: returns the new state; WS_UTF8_REJECT is final,
 * WS_UTF8_ACCEPT (0) between complete characters. */
#define WS_UTF8_ACCEPT 0u
#define WS_UTF8_REJECT 1u
uint32_t ws_utf8_validate(uint32_t state, const uint8_t *buf, size_t len);

#endif
