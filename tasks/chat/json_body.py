"""A request body as JSON, refusing what Python's parser, or the code after it, cannot take.

`json.loads` alone answers some hostile bodies with exceptions other than
`JSONDecodeError`, or accepts values that break the reply later:

* an integer literal past Python's int-string conversion limit (4300 digits)
  raises a plain ValueError; anything over `MAX_INT_DIGITS` digits is refused
  here, with a message saying so;
* deep nesting (`[[[[...`) raises RecursionError inside the parser; the depth
  is measured first, without recursion, and anything deeper than the limit is
  refused before parsing;
* `NaN`, `Infinity` and overflowing floats (`1e999`) are not JSON numbers;
* an unpaired surrogate escape (`"\\ud800"`) parses into a string that cannot be
  encoded as UTF-8, so echoing it (a model name in an error, a reply) would fail.

Every refusal is a `MalformedBody` with a one-line message; the API answers it with 400.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

# Any 64-bit integer has at most 20 digits; no field of a chat request needs more.
MAX_INT_DIGITS = 20
# The longest float literal accepted: far more digits than a double carries.
MAX_FLOAT_CHARS = 100

# A complete JSON string literal (escapes included); brackets inside one do not nest.
_STRING_LITERAL = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
# A \uD800-\uDFFF escape: the only way a surrogate gets into a string decoded from UTF-8.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


class MalformedBody(ValueError):
    """The body is not acceptable JSON; the message says why."""


def load_json(body: bytes, max_depth: int) -> Any:
    """The JSON value in `body` (UTF-8), or MalformedBody."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedBody(f"request body is not valid JSON: it is not UTF-8 ({exc})") from None
    depth = nesting_depth(text, stop_past=max_depth)
    if depth > max_depth:
        raise MalformedBody(f"request body nests arrays/objects more than {max_depth} levels deep")
    try:
        data = json.loads(text, parse_int=_int_literal, parse_float=_float_literal, parse_constant=_constant)
    except MalformedBody:
        raise
    except RecursionError:  # cannot happen below the depth limit; kept so it can never become a 500
        raise MalformedBody(f"request body nests arrays/objects too deeply (limit {max_depth})") from None
    except ValueError as exc:  # JSONDecodeError is one
        raise MalformedBody(f"request body is not valid JSON: {exc}") from None
    if _SURROGATE_ESCAPE.search(text):
        _check_encodable(data)
    return data


def nesting_depth(text: str, stop_past: int) -> int:
    """How deep arrays and objects nest in `text` (brackets in strings do not count).

    A loop over the brackets only, no recursion; it stops counting once past
    `stop_past`. On text that is not JSON the result is approximate, and the
    parser refuses the text anyway.
    """
    brackets = _NOT_BRACKET.sub("", _STRING_LITERAL.sub("", text))
    depth = deepest = 0
    for bracket in brackets:
        if bracket in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > stop_past:
                    break
        else:
            depth -= 1
    return deepest


def _int_literal(literal: str) -> int:
    digits = len(literal) - literal.startswith("-")
    if digits > MAX_INT_DIGITS:
        raise MalformedBody(
            f"request body has an integer of {digits} digits; at most {MAX_INT_DIGITS} are accepted"
        )
    return int(literal)


def _float_literal(literal: str) -> float:
    if len(literal) > MAX_FLOAT_CHARS:
        raise MalformedBody(
            f"request body has a number written with {len(literal)} characters; at most {MAX_FLOAT_CHARS} are accepted"
        )
    value = float(literal)
    if not math.isfinite(value):
        raise MalformedBody(f"request body has the number {literal}, which is out of range")
    return value


def _constant(name: str) -> Any:
    raise MalformedBody(f"request body is not valid JSON: {name} is not a JSON number")


def _check_encodable(data: Any) -> None:
    """Refuse strings (keys too) holding an unpaired surrogate: they have no UTF-8 form."""
    try:
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        surrogate = ord(exc.object[exc.start])
        raise MalformedBody(
            f"request body has an unpaired surrogate escape (\\u{surrogate:04x}): not valid Unicode text"
        ) from None
