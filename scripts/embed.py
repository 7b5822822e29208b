"""Turn a text file into a C header holding it as a string: embed.py SRC VAR OUT."""
import sys

src, var, out = sys.argv[1:4]
data = open(src, "rb").read()
with open(out, "w") as f:
    f.write("/* generated from %s by scripts/embed.py */\n" % src)
    f.write("static const char %s[] = {\n" % var)
    for i in range(0, len(data), 16):
        f.write("    " + ", ".join(str(b) for b in data[i:i + 16]) + ",\n")
    f.write("    0\n};\n")
