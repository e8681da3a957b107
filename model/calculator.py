"""A safe arithmetic calculator: the one tool the chat model may call.

The model writes an expression between `<|tool_call_start|>` and `<|tool_call_end|>`;
the engine hands it here and feeds the answer back. The expression is untrusted
(sampled text, or text from whoever talks to a server), so:

* it is parsed with `ast.parse` (a parser: no code object is compiled, nothing runs)
  and then *walked* by our own interpreter, which knows only numbers, the binary
  operators + - * / // % **, unary + and -, and parentheses (which leave no node).
  Any other node (names, calls, attributes, subscripts, strings, lambdas,
  comprehensions, comparisons, ...) is refused before anything is evaluated;
* input size is bounded (characters, AST nodes, nesting depth), and so is every
  number: literals and every intermediate result must satisfy |x| <= 10**15, and
  a power's result size is estimated *before* it is computed (9**9**9 would
  otherwise take minutes and gigabytes);
* only ASCII is accepted (after mapping × and ÷ to * and /), so look-alike digits
  and identifier tricks never reach the parser;
* `evaluate` never raises: failures come back as "error: ..." text, which is what
  the model sees as the tool output.

Results are formatted canonically (`format_number`): integers without ".0", other
values rounded to 12 significant digits (more for a large integer part) and written without exponent notation, so
the same value always gives the same tokens.
"""

from __future__ import annotations

import ast
import math
from decimal import Decimal

MAX_EXPRESSION_CHARS = 200
MAX_NODES = 100
MAX_DEPTH = 32
MAX_ABS_VALUE = 10**15
MAX_EXPONENT = 64
SIGNIFICANT_DIGITS = 12

# Characters allowed after the × ÷ mapping: a first, cheap wall before the parser
# (no letters means no names, keywords, attributes or string prefixes at all).
_ALLOWED_CHARS = frozenset("0123456789.+-*/%() \t")
_OPERATOR_ALIASES = str.maketrans({"×": "*", "÷": "/", "−": "-"})

Number = int | float


class CalculatorError(ValueError):
    """An expression the calculator refuses or cannot evaluate; the message is shown to the model."""


def evaluate(expression: str) -> str:
    """The canonical result of `expression`, or "error: <why>"; never raises, never runs code."""
    try:
        return format_number(calculate(expression))
    except CalculatorError as exc:
        return f"error: {exc}"
    except (RecursionError, MemoryError, OverflowError):
        # Defensive: the bounds above should make these unreachable.
        return "error: expression too complex"
    except Exception:  # noqa: BLE001 - a tool must answer, whatever the input
        return "error: invalid expression"


def calculate(expression: str) -> Number:
    """The value of `expression`; raises `CalculatorError` with a short reason on any refusal."""
    if not isinstance(expression, str):
        raise CalculatorError("expression must be text")
    text = expression.translate(_OPERATOR_ALIASES).strip()
    # Models (and people) often end with "="; it carries no meaning here.
    text = text.removesuffix("=").strip()
    if not text:
        raise CalculatorError("empty expression")
    if len(text) > MAX_EXPRESSION_CHARS:
        raise CalculatorError(f"expression longer than {MAX_EXPRESSION_CHARS} characters")
    bad = sorted({c for c in text if c not in _ALLOWED_CHARS})
    if bad:
        if "^" in bad:
            raise CalculatorError("'^' is not supported, use ** for powers")
        shown = "".join(bad[:5]) if all(c.isascii() and c.isprintable() for c in bad[:5]) else "non-ASCII"
        raise CalculatorError(f"unsupported characters: {shown}")
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError):
        raise CalculatorError("invalid expression") from None
    n_nodes = sum(1 for _ in ast.walk(tree))
    if n_nodes > MAX_NODES:
        raise CalculatorError(f"expression has more than {MAX_NODES} parts")
    return _eval(tree.body, depth=0)


def _check(value: Number) -> Number:
    if isinstance(value, float) and not math.isfinite(value):
        raise CalculatorError("result is not a finite number")
    if abs(value) > MAX_ABS_VALUE:
        raise CalculatorError("number too large")
    return value


def _eval(node: ast.AST, depth: int) -> Number:
    if depth > MAX_DEPTH:
        raise CalculatorError("expression nested too deeply")
    if isinstance(node, ast.Constant):
        value = node.value
        # bool is an int subclass, complex (1j) is a number: neither is arithmetic here.
        if type(value) not in (int, float):
            raise CalculatorError("only numbers are allowed")
        return _check(value)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.UAdd, ast.USub)):
        operand = _eval(node.operand, depth + 1)
        return _check(-operand if isinstance(node.op, ast.USub) else +operand)
    if isinstance(node, ast.BinOp):
        left = _eval(node.left, depth + 1)
        right = _eval(node.right, depth + 1)
        return _check(_binary(node.op, left, right))
    raise CalculatorError(f"{type(node).__name__.lower()} is not allowed")


def _binary(op: ast.operator, a: Number, b: Number) -> Number:
    if isinstance(op, ast.Add):
        return a + b
    if isinstance(op, ast.Sub):
        return a - b
    if isinstance(op, ast.Mult):
        return a * b  # both |a|, |b| <= 1e15: the product is cheap to compute, then checked
    if isinstance(op, (ast.Div, ast.FloorDiv, ast.Mod)):
        if b == 0:
            raise CalculatorError("division by zero")
        if isinstance(op, ast.Div):
            # Exact when both are integers and it divides: 6/3 is 2, not 2.0.
            if isinstance(a, int) and isinstance(b, int) and a % b == 0:
                return a // b
            return a / b
        return a // b if isinstance(op, ast.FloorDiv) else a % b
    if isinstance(op, ast.Pow):
        return _power(a, b)
    raise CalculatorError(f"operator {type(op).__name__} is not allowed")


def _power(base: Number, exponent: Number) -> Number:
    if abs(exponent) > MAX_EXPONENT:
        raise CalculatorError(f"exponent larger than {MAX_EXPONENT}")
    if base == 0 and exponent < 0:
        raise CalculatorError("division by zero")
    if base < 0 and not float(exponent).is_integer():
        raise CalculatorError("fractional power of a negative number")
    # Estimate the size before computing: |base|**exponent <= 10**15 iff exponent*log10|base| <= 15.
    if abs(base) > 1 and exponent > 0 and exponent * math.log10(abs(base)) > math.log10(MAX_ABS_VALUE) + 1e-9:
        raise CalculatorError("number too large")
    if isinstance(base, int) and isinstance(exponent, int) and exponent < 0:
        return base**exponent  # a float: int ** negative int
    result = base**exponent
    if isinstance(result, complex):  # unreachable after the checks above; never let one out
        raise CalculatorError("result is not a real number")
    return result


def format_number(value: Number) -> str:
    """Canonical text of a result: "7" (never "7.0"), "0.333333333333", "-2.5"."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"not a number: {value!r}")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"not a finite number: {value!r}")
        # Round first, so 0.1+0.2 prints as 0.3 and 2.9999999999999996 as 3; but never
        # round away digits of the integer part (up to the 15 a float holds exactly).
        digits = min(max(SIGNIFICANT_DIGITS, len(str(int(abs(value)))) + 3), 15)
        rounded = Decimal(f"{value:.{digits}g}")
        if rounded == rounded.to_integral_value():
            return str(int(rounded))
        text = format(rounded, "f")
        return text.rstrip("0").rstrip(".") if "." in text else text
    return str(value)
