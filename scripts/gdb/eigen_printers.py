"""gdb pretty printers for the Eigen types gemma3 uses, plus an `eigen-stats` command.

Debian's libeigen3-dev ships no gdb printers (`dpkg -L libeigen3-dev | grep -i gdb` is empty), so
this is a small one of our own. Load it in gdb (or put the line in ~/.gdbinit):

    (gdb) source scripts/gdb/eigen_printers.py

Then `print` shows a dense matrix, vector, Map, Ref or direct-access Block as its shape and values,
NumPy style, with long dimensions elided (`python MAX_ROWS = 12`, or MAX_COLS, shows more):

    (gdb) p q
    $1 = Eigen::Matrix<float> [6 x 128] row-major =
    [[  0.9909,  -0.6455,   0.5614,   0.4813, ...,   -1.983,  -0.1563,  0.03993,    -1.81],
     ...
     [   1.434,   -1.766,   -1.043,   -1.726, ...,   -1.142,   -1.563,   0.6713,   0.3306]]

`eigen-stats EXPR` prints shape, min, max, mean and the Frobenius norm of every element, read in one
block from the inferior's memory, which is quick even for the [T, 262144] logits. docs/debugging.md
walks through a session. Works in any build where the variable is not optimised out.
"""
import re
import struct

import gdb

MAX_ROWS = 6  # rows shown before eliding the middle ones
MAX_COLS = 8  # columns likewise

_SCALARS = {"float": "f", "double": "d", "int": "i", "long": "q", "unsigned char": "B", "signed char": "b"}


def _args(tag):
    """Top-level template arguments of a type name, as strings."""
    inner = tag[tag.index("<") + 1:tag.rindex(">")]
    out, depth, cur = [], 0, ""
    for ch in inner:
        if ch == "," and depth == 0:
            out.append(cur.strip())
            cur = ""
            continue
        depth += ch == "<"
        depth -= ch == ">"
        cur += ch
    return out + [cur.strip()]


def _dynamic(v):
    """The value of an Eigen variable_if_dynamic<Index, N> member (None when it is a compile-time N)."""
    try:
        return int(v["m_value"])
    except gdb.error:
        return None


def _field(val, name):
    try:
        return val[name]
    except gdb.error:
        return None


class _Dense:
    """What every printer needs: scalar, shape, storage order, data pointer, strides."""

    def __init__(self, val, plain_tag):
        args = _args(plain_tag)  # Matrix<Scalar, Rows, Cols, Options, ...>
        self.scalar = args[0]
        self.row_major = len(args) > 3 and (int(args[3]) & 1) == 1
        fixed_rows, fixed_cols = int(args[1]), int(args[2])
        storage = _field(val, "m_storage")
        if storage is not None:  # Matrix: DenseStorage holds the pointer and the dynamic sizes
            self.data = storage["m_data"]
            if self.data.type.code != gdb.TYPE_CODE_PTR:  # fixed size: a plain array member
                self.data = self.data["array"][0].address
            self.rows = int(storage["m_rows"]) if fixed_rows < 0 else fixed_rows
            self.cols = int(storage["m_cols"]) if fixed_cols < 0 else fixed_cols
            self.outer = self.cols if self.row_major else self.rows
            self.inner = 1
        else:  # Map, Ref, Block: MapBase holds pointer and sizes; the stride depends on the type
            self.data = val["m_data"]
            rows, cols = _dynamic(val["m_rows"]), _dynamic(val["m_cols"])
            self.rows = fixed_rows if rows is None else rows
            self.cols = fixed_cols if cols is None else cols
            self.outer = self.cols if self.row_major else self.rows
            self.inner = 1
            stride = _field(val, "m_stride")
            if stride is not None:
                outer, inner = _dynamic(stride["m_outer"]), _dynamic(stride["m_inner"])
                self.outer = outer if outer else self.outer  # 0 or compile-time: the default
                self.inner = inner if inner else 1
            block_outer = _field(val, "m_outerStride")
            if block_outer is not None:
                self.outer = int(block_outer)

    def at(self, r, c):
        i = r * self.outer + c * self.inner if self.row_major else c * self.outer + r * self.inner
        return (self.data + i).dereference()

    def values(self):
        """Every element, row by row, read from memory in one block when the layout allows."""
        fmt = _SCALARS.get(self.scalar)
        contiguous = self.inner == 1 and self.outer == (self.cols if self.row_major else self.rows)
        if fmt and contiguous and self.rows * self.cols > 0:
            size = struct.calcsize(fmt)
            mem = gdb.selected_inferior().read_memory(int(self.data), size * self.rows * self.cols)
            return struct.unpack("<%d%s" % (self.rows * self.cols, fmt), bytes(mem))
        return [float(self.at(r, c)) for r in range(self.rows) for c in range(self.cols)]


def _shown(n, limit):
    """Indices to show out of n, with None where the elided middle goes."""
    if n <= limit:
        return list(range(n))
    half = limit // 2
    return list(range(half)) + [None] + list(range(n - half, n))


class EigenPrinter:
    def __init__(self, val, kind, plain_tag):
        self.val, self.kind = val, kind
        self.m = _Dense(val, plain_tag)

    def to_string(self):
        m = self.m
        order = "row-major" if m.row_major else "column-major"
        head = "Eigen::%s<%s> [%d x %d] %s" % (self.kind, m.scalar, m.rows, m.cols, order)
        if m.rows * m.cols == 0:
            return head + " (empty)"
        if m.rows == 1 or m.cols == 1:  # a vector: one line
            n, at = (m.cols, lambda i: m.at(0, i)) if m.rows == 1 else (m.rows, lambda i: m.at(i, 0))
            cells = ["..." if i is None else "%.4g" % float(at(i)) for i in _shown(n, 2 * MAX_COLS)]
            return head + " = [" + ", ".join(cells) + "]"
        rows = []
        for r in _shown(m.rows, MAX_ROWS):
            if r is None:
                rows.append("...")
                continue
            cells = ["..." if c is None else "%8.4g" % float(m.at(r, c)) for c in _shown(m.cols, MAX_COLS)]
            rows.append("[" + ", ".join(cells) + "]")
        return head + " =\n[" + ",\n ".join(rows) + "]"


_MATRIX = re.compile(r"^Eigen::Matrix<.*>$")
_VIEW = re.compile(r"^Eigen::(Map|Ref|Block)<(.*)>$")


def lookup(val):
    t = val.type
    if t.code == gdb.TYPE_CODE_REF:
        t = t.target()
    tag = t.strip_typedefs().unqualified().tag
    if not tag:
        return None
    if _MATRIX.match(tag):
        return EigenPrinter(val, "Matrix", tag)
    view = _VIEW.match(tag)
    if view:
        plain = _args(tag)[0]
        plain = re.sub(r"^const ", "", plain)
        if plain.startswith("Eigen::Matrix<") and _field(val, "m_data") is not None:
            return EigenPrinter(val, view.group(1), plain)
    return None


class EigenStats(gdb.Command):
    """eigen-stats EXPR: shape, min, max, mean and norm of an Eigen matrix, map or ref."""

    def __init__(self):
        super().__init__("eigen-stats", gdb.COMMAND_DATA, gdb.COMPLETE_EXPRESSION)

    def invoke(self, arg, from_tty):
        printer = lookup(gdb.parse_and_eval(arg))
        if printer is None:
            raise gdb.GdbError("eigen-stats: %s is not an Eigen dense matrix, Map or Ref" % arg)
        m = printer.m
        v = m.values()
        if not v:
            print("%s: [%d x %d] (empty)" % (arg, m.rows, m.cols))
            return
        mean = sum(v) / len(v)
        norm = sum(x * x for x in v) ** 0.5
        print("%s: [%d x %d] min %.6g max %.6g mean %.6g norm %.6g" % (arg, m.rows, m.cols, min(v), max(v), mean, norm))


gdb.pretty_printers.append(lookup)
EigenStats()
