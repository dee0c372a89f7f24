"""The VPL grammar for one logical line (pyparsing). Grammar only.

``varpulis.lang.source`` cuts a program into logical lines (a statement with
its continuation lines, or a block header); each is matched against
:data:`LINE`, or :data:`EVENT_FIELDS` inside an ``event`` block. Parse actions
that build the AST are attached by ``varpulis.lang.builder``; this module only
names the pieces.

Expressions are matched flat (``operand (binop operand)*``) and precedence is
resolved by the builder: one regex per operator instead of one grammar level
per precedence level keeps parsing linear and fast.
"""

from __future__ import annotations

# fmt: off
import pyparsing as pp

pp.ParserElement.set_default_whitespace_chars(" \t\r\n")

__all__ = [
    "ARGS", "ATOM", "BINOP", "EVENT_FIELDS", "EXPR", "FLAT_EXPR", "LINE", "ONE_STMT", "OPERAND",
    "PLAIN_ATOM", "PREFIXES", "RESERVED", "STATEMENTS",
]

#: Words that end an expression; they are never identifiers.
RESERVED = frozenset("and or not in is if then else true false null".split())

COMMENT = pp.Regex(r"#[^\n]*|//[^\n]*|/\*[\s\S]*?\*/").set_name("comment")

LPAR, RPAR, LBRACK, RBRACK, LBRACE, RBRACE, COMMA, EQ = map(pp.Suppress, "()[]{},=")
COLON = pp.Regex(r":(?!=)").suppress().set_name("':'")
ARROW = pp.Suppress(pp.Literal("->")).set_name("'->'")


def kw(word: str) -> pp.Keyword:
    """A keyword that must stand alone (``in`` does not match ``index``)."""
    return pp.Keyword(word).set_name(repr(word))


(STREAM, CONNECTOR, CONTEXT, PATTERN, IMPORT, FN, EVENT, EXTENDS, LET, VAR, CONST, IF, ELIF,
 ELSE, WHILE, FOR, IN, RETURN, BREAK, CONTINUE, EMIT, AS, WHERE, ALL, THEN, WITHIN, PARTITION,
 BY, NOT, MERGE, JOIN, TIMER) = map(kw, (
    "stream connector context pattern import fn event extends let var const if elif else while "
    "for in return break continue emit as where all then within partition by not merge join "
    "timer").split())
SEQ, AND_P, OR_P, NOT_P = map(kw, ["SEQ", "AND", "OR", "NOT"])

_RESERVED_RE = "|".join(sorted(RESERVED))
IDENT = pp.Regex(rf"(?!(?:{_RESERVED_RE})\b)[A-Za-z_][A-Za-z0-9_]*").set_name("identifier")
STRING = pp.Regex(r'"(?:[^"\\\n]|\\.)*"').set_name("string")

#: A run of prefix operators ('not', '-', '~'); the builder gives each its precedence.
_PREFIXES = r"(?:(?:not\b(?!\s+in\b)|-(?!>)|~)\s*)*"
_NAME = r"(?!(?:and|or|not|in|is|if|then|else)\b)[A-Za-z_][A-Za-z0-9_]*"
# One regex for the commonest operand: its prefix operators, then a number or
# duration, a string, or a name with its glued members ("a.price"). A member
# followed by '(' is left alone: it is a stream operation (".within(5m)" after a
# step filter). A number glued to letters ("5min") matches nothing, so it is
# reported rather than split. One regex instead of a grammar level per piece is
# what keeps parsing fast.
_ATOM = (
    _PREFIXES
    + r"(?:\d+(?:\.\d+)?(?:[eE][+-]?\d+)?(?:ns|us|ms|s|m|h|d)?(?![A-Za-z0-9_])"
    + r'|"(?:[^"\\\n]|\\.)*"'
    + rf"|{_NAME}\b(?:\.[A-Za-z_][A-Za-z0-9_]*\b(?!\s*\())*)"
)
ATOM = pp.Regex(_ATOM).set_name("expression")
#: The same atom when no call, index or member suffix follows: the common operand
#: in one regex call instead of a grammar path (parse time is per element tried).
PLAIN_ATOM = pp.Regex(_ATOM + r"(?!\s*[(\[]|\.[A-Za-z_])").set_name("expression")
PREFIXES = pp.Regex(r"(?:(?:not\b(?!\s+in\b)|-(?!>)|~)\s*)+").set_name("prefix operator")

#: Binary operators, longest first; '-' is not followed by '>' (the sequence arrow).
_BINOP = r"\*\*|==|!=|<=|>=|<<|>>|\.\.=|\.\.|-(?!>)|[+*/%<>|^&]|not\s+in\b|(?:and|or|in|is)\b"
BINOP = pp.Regex(_BINOP).set_name("operator")
#: A whole expression made of atoms and operators only ("price > 1.5 and x == 2"),
#: complete (no suffix or operator follows). Most expressions are of this shape;
#: matching them with one regex, and folding them in the builder, keeps parsing
#: fast. Anything else (brackets, calls) takes the general path below.
# The (?=(...))\1 idiom makes the chain atomic: when the final check fails the
# regex engine must not retry shorter splits ("a - - - b" has many), which
# would be exponential. Python 3.10 has no possessive quantifiers.
FLAT_EXPR = pp.Regex(
    rf"(?=((?:{_ATOM})(?:\s*(?:{_BINOP})\s*(?:{_ATOM}))*))\1"
    rf"(?!\s*(?:[(\[]|\.[A-Za-z_]|{_BINOP}))"
).set_name("expression")

EXPR = pp.Forward().set_name("expression")
KWNAME = pp.Regex(r"([A-Za-z_][A-Za-z0-9_]*)\s*:(?!=)").set_name("argument name")
KWARG = pp.Group(KWNAME + EXPR).set_name("name: value")
ARG = pp.Group((KWNAME - EXPR) | EXPR)
ARGS = pp.Group(pp.Optional(pp.DelimitedList(ARG, allow_trailing_delim=True)))
KWARGS = pp.Group(pp.Optional(pp.DelimitedList(KWARG, allow_trailing_delim=True)))

CALL_SUFFIX = pp.Group(LPAR + ARGS + RPAR)
# A member glued to its object; one followed by '(' is a stream operation
# (".within(5m)" after a step filter), never a method call.
MEMBER_SUFFIX = pp.Regex(r"\.([A-Za-z_][A-Za-z0-9_]*)\b(?!\s*\()").leave_whitespace()
SLICE = pp.Group(pp.Optional(EXPR, default=None) + COLON + pp.Optional(EXPR, default=None))
INDEX_SUFFIX = pp.Group(LBRACK + (SLICE | EXPR) + RBRACK)
SUFFIX = CALL_SUFFIX | INDEX_SUFFIX | MEMBER_SUFFIX

IF_EXPR = pp.Group(IF + EXPR - THEN.suppress() - EXPR - ELSE.suppress() - EXPR)
PAREN = LPAR + EXPR - RPAR
ARRAY = pp.Group(LBRACK + pp.Optional(pp.DelimitedList(EXPR, allow_trailing_delim=True)) - RBRACK)
MAP_ENTRY = pp.Group((STRING | IDENT) + COLON + EXPR)
MAP = pp.Group(LBRACE + pp.Optional(pp.DelimitedList(MAP_ENTRY, allow_trailing_delim=True))
               - RBRACE)
PRIMARY = (ATOM | pp.Optional(PREFIXES) + (IF_EXPR | PAREN | ARRAY | MAP)).set_name("expression")
# Most operands have no suffix: one lookahead spares trying each suffix in turn.
SUFFIXES = pp.Optional(pp.Regex(r"(?=[(\[]|\.[A-Za-z_])").suppress() + pp.OneOrMore(SUFFIX))
OPERAND = pp.Group(PRIMARY + SUFFIXES).set_name("expression")
OPERAND_ANY = (PLAIN_ATOM | OPERAND).set_name("expression")
# '-' after an operator: once one is read, a missing operand is the error to report.
CHAIN = pp.Group(OPERAND_ANY + pp.ZeroOrMore(BINOP - OPERAND_ANY))
EXPR <<= FLAT_EXPR | CHAIN

# ---------------------------------------------------------------- types
TYPE = pp.Forward().set_name("type")
TYPE <<= pp.Combine(
    (IDENT + pp.Optional(pp.Literal("<") + TYPE + pp.Literal(">"))
     | pp.Literal("[") + TYPE + pp.Literal("]")
     | pp.Literal("{") + TYPE + pp.Literal(":") + TYPE + pp.Literal("}")
     | pp.Literal("(") + pp.DelimitedList(TYPE, combine=True) + pp.Literal(")"))
    + pp.Optional(pp.Literal("?")),
    adjacent=False, join_string="",
).set_name("type")

# ---------------------------------------------------------------- statements
LET_STMT = pp.Group((LET | VAR | CONST) + IDENT + pp.Optional(COLON + TYPE, default=None)
                    - EQ - EXPR)
ASSIGN_STMT = pp.Group(IDENT + pp.Suppress(":=") - EXPR)
RETURN_STMT = pp.Group(RETURN + pp.Optional(EXPR))
BREAK_STMT = pp.Group(BREAK)
CONTINUE_STMT = pp.Group(CONTINUE)
EMIT_STMT = pp.Group(EMIT - IDENT - LPAR - KWARGS - RPAR)
EXPR_STMT = pp.Group(EXPR)
SIMPLE_STMT = (LET_STMT | ASSIGN_STMT | RETURN_STMT
               | BREAK_STMT | CONTINUE_STMT | EMIT_STMT
               | EXPR_STMT)
SIMPLE_STMTS = pp.DelimitedList(SIMPLE_STMT, delim=";", allow_trailing_delim=True)
#: A line holding one simple statement, by its first word (the parser picks).
ONE_STMT = {"let": LET_STMT, "var": LET_STMT, "const": LET_STMT, "return": RETURN_STMT,
            "break": BREAK_STMT, "continue": CONTINUE_STMT, "emit": EMIT_STMT,
            ":=": ASSIGN_STMT, "": EXPR_STMT}

# ---------------------------------------------------------------- declarations
CONNECTOR_DECL = pp.Group(CONNECTOR - IDENT - EQ - IDENT - LPAR - KWARGS - RPAR)
CONTEXT_DECL = pp.Group(CONTEXT - IDENT + pp.Optional(LPAR - KWARGS - RPAR, default=None))
IMPORT_DECL = pp.Group(IMPORT - STRING + pp.Optional(AS.suppress() - IDENT, default=None))

STEP_FILTER = pp.Optional(WHERE.suppress() - EXPR, default=None)
ALIAS = pp.Optional(AS.suppress() - IDENT, default=None)
MERGE_ITEM = pp.Group(STREAM - IDENT - EQ - IDENT + pp.Optional(
    pp.Regex(r"\.\s*where\b").suppress() - LPAR - EXPR - RPAR, default=None)) | IDENT
MERGE_SRC = pp.Group(MERGE + LPAR - pp.DelimitedList(MERGE_ITEM) - RPAR)
JOIN_SRC = pp.Group(JOIN + LPAR - pp.DelimitedList(IDENT) - RPAR)
TIMER_SRC = pp.Group(TIMER + LPAR - ARGS - RPAR)
EVENT_SRC = pp.Group(IDENT + ALIAS)
SOURCE = (MERGE_SRC | JOIN_SRC | TIMER_SRC | EVENT_SRC).set_name(
    "stream source (an event type, merge(...), join(...) or timer(...))"
)

DOT = pp.Regex(r"\.(?!\.)").suppress().set_name("'.'")
OP_NAME = pp.Regex(r"(?!not\b)[A-Za-z_][A-Za-z0-9_]*").set_name("operation name")
NEGATION = pp.Group(DOT + pp.Suppress(pp.Keyword("not")) + LPAR - IDENT - STEP_FILTER - RPAR)
OPERATION = pp.Group(DOT + OP_NAME - LPAR - ARGS - RPAR)
STEP = pp.Group(ARROW - pp.Optional(ALL, default=None) - IDENT + ALIAS + STEP_FILTER + ALIAS)
STREAM_PART = (OPERATION | STEP | NEGATION).set_name("'.operation(...)' or '-> step'")
STREAM_DECL = pp.Group(STREAM - IDENT - EQ - SOURCE - pp.Group(pp.ZeroOrMore(STREAM_PART)))

P_OR = pp.Forward().set_name("pattern")
P_ITEM = pp.Group(pp.Optional(NOT_P, default=None) + IDENT
                  + pp.Optional(pp.Regex(r"[+*?]").leave_whitespace(), default="")
                  + ALIAS + STEP_FILTER + ALIAS)
P_SEQ = pp.Group(SEQ + LPAR - pp.DelimitedList(P_OR) - RPAR)
P_ATOM = P_SEQ | (LPAR + P_OR - RPAR) | P_ITEM
P_AND = pp.Group(P_ATOM + pp.ZeroOrMore(AND_P + P_ATOM))
P_OR <<= pp.Group(P_AND + pp.ZeroOrMore(OR_P + P_AND))
PATTERN_DECL = pp.Group(PATTERN - IDENT - EQ - P_OR
                        + pp.Optional(WITHIN.suppress() - EXPR, default=None)
                        + pp.Optional(PARTITION.suppress() - BY.suppress() - IDENT, default=None))

# ---------------------------------------------------------------- block headers
PARAM = pp.Group(IDENT + pp.Optional(COLON - TYPE, default=None))
FN_HEADER = pp.Group(FN - IDENT - LPAR - pp.Group(pp.Optional(pp.DelimitedList(PARAM)))
                     - RPAR + pp.Optional(ARROW - TYPE, default=None) - COLON)
IF_HEADER = pp.Group(IF + EXPR + COLON)
ELIF_HEADER = pp.Group(ELIF - EXPR - COLON)
ELSE_HEADER = pp.Group(ELSE + COLON)
WHILE_HEADER = pp.Group(WHILE - EXPR - COLON)
FOR_HEADER = pp.Group(FOR - IDENT - IN.suppress() - EXPR - COLON)
EVENT_FIELD = pp.Group(IDENT + COLON - TYPE + pp.Optional(COMMA))
EVENT_FIELDS = pp.ZeroOrMore(EVENT_FIELD)
EVENT_HEADER = pp.Group(EVENT - IDENT + pp.Optional(EXTENDS.suppress() - IDENT, default=None)
                        - COLON - pp.Group(EVENT_FIELDS))
HEADER = (FN_HEADER | IF_HEADER | ELIF_HEADER | ELSE_HEADER
          | WHILE_HEADER | FOR_HEADER | EVENT_HEADER)

DECL = (STREAM_DECL | CONNECTOR_DECL | CONTEXT_DECL
        | PATTERN_DECL | IMPORT_DECL)

#: One logical line: a block header (with an optional inline body), a declaration,
#: or simple statements separated by ';'.
LINE_HEADER = pp.Group(HEADER + pp.Group(pp.Optional(SIMPLE_STMTS)))
LINE = LINE_HEADER | DECL | SIMPLE_STMTS

#: The grammar of a logical line by its first word (anything else: simple statements).
#: Dispatching on the word spares pyparsing from trying every alternative in turn.
SIMPLE_STMT.set_name('statement')
HEADER.set_name('block header')
P_AND.set_name('pattern')
P_ATOM.set_name('pattern item')
MERGE_ITEM.set_name('merge item')
ARG.set_name('argument')
TIMER_SRC.set_name('timer(...)')
EVENT_FIELD.set_name('field: type')
STATEMENTS = {
    "stream": STREAM_DECL, "connector": CONNECTOR_DECL, "context": CONTEXT_DECL,
    "pattern": PATTERN_DECL, "import": IMPORT_DECL,
    **{word: LINE_HEADER for word in ("fn", "if", "elif", "else", "while", "for", "event")},
}
# fmt: on
