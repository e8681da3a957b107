"""The chat format: conversations <-> token ids, with the loss mask SFT trains on.

Messages
--------
Conversations are lists of messages in the usual `messages` shape. Two spellings
are accepted and normalised (`normalize_messages`) into one internal form:

* internal: `{"role": "system"|"user"|"assistant", "content": str | list[part]}`
  where an assistant's parts are `{"type": "text", "text": ...}`,
  `{"type": "tool_call", "text": EXPRESSION}` and `{"type": "tool_output", "text": RESULT}`
  (system/user parts may only be text);
* OpenAI style: an assistant message with `tool_calls: [{"type": "function", "function":
  {"name": "calculator", "arguments": "{\"expression\": \"...\"}"}}]` (arguments may
  also be a dict), followed by one `{"role": "tool", "content": ...}` message per
  call, in the calls' order; an assistant message right after those tool messages
  continues the *same* turn (the model resumes after the tool output).

Validation errors name the message index and what is wrong.

Tokens and loss mask
--------------------
::

    <|bos|>                                                     mask 0
    <|system_start|> text <|system_end|>                        mask 0 (at most one, first)
    <|user_start|> text <|user_end|>                            mask 0
    <|assistant_start|>                                         mask 0 (the prompt supplies it)
        text                                                    mask 1
        <|tool_call_start|> expression <|tool_call_end|>        mask 1 (the model must emit the call)
        <|tool_output_start|> result <|tool_output_end|>        mask 0 (the engine injects it)
        text                                                    mask 1 (the model continues)
    <|assistant_end|>                                           mask 1 (the model must learn to stop)

`mask[i]` says whether token `ids[i]` is a training *target*: with inputs `ids[:-1]`
and targets `ids[1:]`, the loss mask is `mask[1:]`.

Each text segment between two special tokens is encoded on its own (adjacent text
parts are joined first), which is exactly how a Hugging Face tokenizer splits the
string rendered by `model.export_hf.CHAT_TEMPLATE`, so both give the same ids.
Text is encoded as plain text: a message containing "<|user_start|>" cannot forge
a control token.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

from model import calculator
from model.engine import ToolCall, ToolUse
from model.tokenizer import SPECIAL_TOKENS, BpeTokenizer

Part = dict[str, str]
Message = dict[str, Any]

ROLES: tuple[str, ...] = ("system", "user", "assistant")
PART_TYPES: tuple[str, ...] = ("text", "tool_call", "tool_output")
TOOL_NAME = "calculator"
# Keys of OpenAI-style arguments that may hold the expression (the first is canonical).
_EXPRESSION_KEYS = ("expression", "expr", "input")


class RenderedConversation(tuple):  # type: ignore[type-arg]
    """`(ids, mask)`, unpackable as a pair, plus `truncated` (the conversation was cut to `max_tokens`)."""

    truncated: bool

    def __new__(cls, ids: list[int], mask: list[int], truncated: bool = False) -> RenderedConversation:
        self = super().__new__(cls, (ids, mask))
        self.truncated = truncated
        return self

    @property
    def ids(self) -> list[int]:
        return self[0]

    @property
    def mask(self) -> list[int]:
        return self[1]


# --- Normalisation and validation ---------------------------------------------------------------


def _present(message: Mapping[str, Any], key: str) -> bool:
    # Arrow-backed datasets fill keys missing from some rows with None: treat None as absent.
    return message.get(key) is not None


def _text_parts(content: Any, where: str, allow_tools: bool) -> list[Part]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if not isinstance(content, list):
        raise ValueError(f"{where}: content must be a string or a list of parts, got {type(content).__name__}")
    parts: list[Part] = []
    for j, part in enumerate(content):
        if not isinstance(part, Mapping):
            raise ValueError(f"{where}: part {j} must be an object, got {type(part).__name__}")
        kind = part.get("type")
        if kind not in PART_TYPES:
            raise ValueError(f"{where}: part {j} has unknown type {kind!r} (expected one of {PART_TYPES})")
        if kind != "text" and not allow_tools:
            raise ValueError(f"{where}: part {j} is a {kind}, which only assistant messages may contain")
        text = part.get("text")
        if not isinstance(text, str):
            raise ValueError(f"{where}: part {j} ({kind}) needs a string 'text'")
        parts.append({"type": kind, "text": text})
    return parts


def _call_expression(call: Any, where: str) -> str:
    if not isinstance(call, Mapping):
        raise ValueError(f"{where}: must be an object")
    if call.get("type", "function") != "function":
        raise ValueError(f"{where}: type must be 'function', got {call.get('type')!r}")
    function = call.get("function")
    if not isinstance(function, Mapping):
        raise ValueError(f"{where}: missing 'function' object")
    name = function.get("name")
    if name != TOOL_NAME:
        raise ValueError(f"{where}: unknown tool {name!r} (only {TOOL_NAME!r} exists)")
    arguments = function.get("arguments")
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{where}: function.arguments is not valid JSON ({exc.msg})") from None
    if not isinstance(arguments, Mapping):
        raise ValueError(f"{where}: function.arguments must be a JSON object")
    for key in _EXPRESSION_KEYS:
        if isinstance(arguments.get(key), str):
            return arguments[key]
    raise ValueError(f"{where}: function.arguments needs a string 'expression'")


def normalize_messages(messages: Sequence[Mapping[str, Any]]) -> list[Message]:
    """The internal form of `messages` (either spelling); raises ValueError naming the bad message.

    The result has roles system/user/assistant only; content is a string for
    system/user and a list of parts (adjacent text merged) for the assistant.
    Checks: non-empty, known roles, system only first, tool messages only after
    an assistant's tool_calls (one per call), every tool_call followed by its output.
    """
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence):
        raise ValueError(f"a conversation must be a list of messages, got {type(messages).__name__}")
    if not messages:
        raise ValueError("empty conversation")
    out: list[Message] = []
    i = 0
    while i < len(messages):
        role = _checked_role(messages[i], f"message {i}", first=not out)
        if role != "assistant":
            out.append(_plain_message(messages[i], role, f"message {i}"))
            i += 1
            continue
        turn, i = _assistant_turn(messages, i)
        _check_tool_pairs(turn, f"message {len(out)} (assistant)")
        out.append({"role": "assistant", "content": _merge_text(turn)})
    return out


def _checked_role(message: Any, where: str, first: bool) -> str:
    """The role of a message that may start a turn (anything but a tool reply), after checking it has content."""
    if not isinstance(message, Mapping):
        raise ValueError(f"{where}: must be an object, got {type(message).__name__}")
    role = message.get("role")
    if role == "tool":
        raise ValueError(f"{where}: tool message without a preceding assistant message with tool_calls")
    if role not in ROLES:
        raise ValueError(f"{where}: unknown role {role!r} (expected one of {(*ROLES, 'tool')})")
    if role == "system" and not first:
        raise ValueError(f"{where}: a system message may only come first")
    has_calls = role == "assistant" and bool(message.get("tool_calls"))
    if not _present(message, "content") and not has_calls:
        raise ValueError(f"{where}: missing content")
    return str(role)


def _plain_message(message: Mapping[str, Any], role: str, where: str) -> Message:
    """A system or user message: its text parts joined into one string."""
    if _present(message, "tool_calls"):
        raise ValueError(f"{where}: only assistant messages may have tool_calls")
    parts = _text_parts(message["content"], where, allow_tools=False)
    return {"role": role, "content": "".join(p["text"] for p in parts)}


def _assistant_turn(messages: Sequence[Mapping[str, Any]], i: int) -> tuple[list[Part], int]:
    """The parts of the assistant turn starting at `messages[i]`, and the index after it.

    A turn is the message, plus (after tool_calls) its tool messages and any assistant
    message that follows them, which continues the same turn.
    """
    message, where = messages[i], f"message {i}"
    turn: list[Part] = []
    while True:
        if _present(message, "content"):
            turn += _text_parts(message["content"], where, allow_tools=True)
        calls = message.get("tool_calls") or []
        if not isinstance(calls, list):
            raise ValueError(f"{where}: tool_calls must be a list")
        i += 1
        if not calls:
            return turn, i
        turn += _tool_round(messages, i, calls, where)
        i += len(calls)
        if not (i < len(messages) and isinstance(messages[i], Mapping) and messages[i].get("role") == "assistant"):
            return turn, i
        message, where = messages[i], f"message {i}"


def _tool_round(messages: Sequence[Mapping[str, Any]], first_reply: int, calls: list[Any], where: str) -> list[Part]:
    """tool_call / tool_output parts of one message's `calls`, answered by the tool messages from `first_reply` on."""
    parts: list[Part] = []
    for k, call in enumerate(calls):
        expression = _call_expression(call, f"{where}: tool_calls[{k}]")
        j = first_reply + k
        if j >= len(messages) or not isinstance(messages[j], Mapping) or messages[j].get("role") != "tool":
            raise ValueError(f"{where}: has {len(calls)} tool_calls but only {k} tool message(s) follow it")
        reply = messages[j]
        call_id = call.get("id") if isinstance(call, Mapping) else None
        if call_id is not None and _present(reply, "tool_call_id") and reply["tool_call_id"] != call_id:
            raise ValueError(
                f"message {j}: answers tool call {reply['tool_call_id']!r} but {call_id!r} was expected "
                "(tool messages must follow the order of tool_calls)"
            )
        output_parts = _text_parts(reply.get("content") or "", f"message {j}", allow_tools=False)
        parts.append({"type": "tool_call", "text": expression})
        parts.append({"type": "tool_output", "text": "".join(p["text"] for p in output_parts)})
    return parts


def _merge_text(parts: list[Part]) -> list[Part]:
    """Adjacent text parts joined, empty ones dropped: each text run then encodes as one segment."""
    merged: list[Part] = []
    for part in parts:
        if part["type"] == "text":
            if not part["text"]:
                continue
            if merged and merged[-1]["type"] == "text":
                merged[-1] = {"type": "text", "text": merged[-1]["text"] + part["text"]}
                continue
        merged.append(dict(part))
    return merged


def _check_tool_pairs(parts: list[Part], where: str) -> None:
    for k, part in enumerate(parts):
        prev = parts[k - 1]["type"] if k else None
        nxt = parts[k + 1]["type"] if k + 1 < len(parts) else None
        if part["type"] == "tool_call" and nxt != "tool_output":
            raise ValueError(f"{where}: part {k}: a tool_call must be followed by its tool_output")
        if part["type"] == "tool_output" and prev != "tool_call":
            raise ValueError(f"{where}: part {k}: a tool_output must follow a tool_call")


# --- Rendering ----------------------------------------------------------------------------------


def _render(tokenizer: BpeTokenizer, messages: list[Message], open_last: bool) -> tuple[list[int], list[int]]:
    """Ids and mask of normalised messages; `open_last` leaves a last assistant turn without its end."""
    tid = tokenizer.token_id
    ids = [tokenizer.bos_id]
    mask = [0]

    def add(tokens: list[int], m: int) -> None:
        ids.extend(tokens)
        mask.extend([m] * len(tokens))

    for n, message in enumerate(messages):
        role = message["role"]
        if role != "assistant":
            add([tid(f"<|{role}_start|>"), *tokenizer.encode(message["content"]), tid(f"<|{role}_end|>")], 0)
            continue
        add([tid("<|assistant_start|>")], 0)
        for part in message["content"]:
            body = tokenizer.encode(part["text"])
            if part["type"] == "text":
                add(body, 1)
            elif part["type"] == "tool_call":
                add([tid("<|tool_call_start|>"), *body, tid("<|tool_call_end|>")], 1)
            else:
                add([tid("<|tool_output_start|>"), *body, tid("<|tool_output_end|>")], 0)
        if not (open_last and n == len(messages) - 1):
            add([tid("<|assistant_end|>")], 1)
    return ids, mask


def render_conversation(
    tokenizer: BpeTokenizer, messages: Sequence[Mapping[str, Any]], max_tokens: int | None = None
) -> RenderedConversation:
    """A whole conversation as `(ids, mask)` for SFT (see the module docstring for the rules).

    Needs at least one assistant turn, and no assistant turn may end on a tool
    output (the reply must continue after it). With `max_tokens`, a longer
    conversation is cut to its first `max_tokens` tokens and `.truncated` is set;
    whether to keep or skip it is the caller's choice (`model.sft_batches.render_examples`).
    """
    normalized = normalize_messages(messages)
    if not any(m["role"] == "assistant" for m in normalized):
        raise ValueError("conversation has no assistant message (nothing to train on)")
    for n, m in enumerate(normalized):
        if m["role"] == "assistant" and m["content"] and m["content"][-1]["type"] == "tool_output":
            raise ValueError(f"assistant turn {n} ends with a tool output; the reply must continue after it")
    ids, mask = _render(tokenizer, normalized, open_last=False)
    if max_tokens is not None:
        if max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
        if len(ids) > max_tokens:
            return RenderedConversation(ids[:max_tokens], mask[:max_tokens], truncated=True)
    return RenderedConversation(ids, mask)


def render_prompt(tokenizer: BpeTokenizer, messages: Sequence[Mapping[str, Any]]) -> list[int]:
    """The conversation so far, ending where the model should generate: `<|assistant_start|>`.

    Exception: when the conversation ends inside an assistant turn that is waiting
    for the model after a tool output (OpenAI clients send the tool results back this
    way), that turn is left open and the prompt ends with `<|tool_output_end|>`.
    """
    normalized = normalize_messages(messages)
    last = normalized[-1]
    open_last = last["role"] == "assistant" and bool(last["content"]) and last["content"][-1]["type"] == "tool_output"
    ids, _ = _render(tokenizer, normalized, open_last=open_last)
    if not open_last:
        ids.append(tokenizer.token_id("<|assistant_start|>"))
    return ids


# --- Generated ids -> parts, and the tool hook --------------------------------------------------


def parse_assistant(tokenizer: BpeTokenizer, ids: Sequence[int]) -> list[Part]:
    """Split generated ids (after `<|assistant_start|>`) into text / tool_call / tool_output parts.

    Stops at `<|assistant_end|>` or `<|bos|>` (either may be absent: generation can be
    cut by length). A section left unclosed at the end still becomes its part. Other
    special tokens (a model straying into another role's markers) are dropped, not
    shown as text. Each run of text is decoded at once, so characters split across
    tokens come out whole.
    """
    tid = tokenizer.token_id
    stop = {tid("<|assistant_end|>"), tokenizer.bos_id}
    opens = {tid("<|tool_call_start|>"): "tool_call", tid("<|tool_output_start|>"): "tool_output"}
    closes = {tid("<|tool_call_end|>"): "tool_call", tid("<|tool_output_end|>"): "tool_output"}
    n_special = len(SPECIAL_TOKENS)  # ids below this are control tokens, never text
    parts: list[Part] = []
    kind, run = "text", []

    def flush() -> None:
        if run or kind != "text":
            text = tokenizer.decode(run)
            if kind != "text" or text:
                parts.append({"type": kind, "text": text})
        run.clear()

    for raw in ids:
        token = int(raw)
        if token in stop:
            break
        if token in opens:
            flush()
            kind = opens[token]
        elif token in closes:
            if kind == closes[token]:
                flush()
                kind = "text"
            # A close without its open is dropped like any stray special token.
        elif token < n_special:
            continue
        else:
            run.append(token)
    if run or kind != "text":
        flush()
    return _merge_text(parts)


def assistant_text(parts: Sequence[Mapping[str, str]], show_tools: bool = False) -> str:
    """The reply as text: its text parts joined; with `show_tools`, calls shown as "[calculator: E = R]"."""
    out: list[str] = []
    for k, part in enumerate(parts):
        if part["type"] == "text":
            out.append(part["text"])
        elif show_tools and part["type"] == "tool_call":
            nxt = parts[k + 1] if k + 1 < len(parts) else None
            result = nxt["text"] if nxt is not None and nxt["type"] == "tool_output" else "?"
            out.append(f"[{TOOL_NAME}: {part['text']} = {result}]")
    return "".join(out)


def tool_feedback(tokenizer: BpeTokenizer, call_ids: Sequence[int]) -> list[int]:
    """What to force-feed after `<|tool_call_end|>`: `<|tool_output_start|> result <|tool_output_end|>`.

    `call_ids` is the call's expression (the engine's `ToolCall.body`); special tokens
    in it (e.g. the start/end markers themselves) are ignored. The calculator never
    raises: a bad expression gives "error: ..." as the output, which the model sees.
    """
    expression = tokenizer.decode([int(i) for i in call_ids if int(i) >= len(SPECIAL_TOKENS)])
    result = calculator.evaluate(expression)
    start, end = tokenizer.token_id("<|tool_output_start|>"), tokenizer.token_id("<|tool_output_end|>")
    return [start, *tokenizer.encode(result), end]


def calculator_tool(tokenizer: BpeTokenizer, feedback: Callable[[ToolCall], Sequence[int]] | None = None) -> ToolUse:
    """The engine's hook for calculator calls in this format: on `<|tool_call_end|>` the engine
    force-feeds `feedback(call)`, by default `tool_feedback` of the call's expression."""
    return ToolUse(
        tokenizer.token_id("<|tool_call_start|>"),
        tokenizer.token_id("<|tool_call_end|>"),
        feedback or (lambda call: tool_feedback(tokenizer, call.body)),
    )


class ReplyDecoder:
    """Generated token ids -> text deltas, for whatever streams a reply (terminal, chat page, API).

    * Text tokens become bytes, fed to an incremental UTF-8 decoder: a character
      split across tokens is held back until its last byte arrives, so no delta
      ever carries half a character (invalid bytes become U+FFFD, as in `decode`).
    * A calculator call (`<|tool_call_start|> E <|tool_call_end|>` then the engine's
      forced `<|tool_output_start|> R <|tool_output_end|>`) is shown as
      "[calculator: E = R]" once its output is complete.
    * Any other control token is dropped (a model straying into another role's markers).
    """

    def __init__(self, tokenizer: BpeTokenizer) -> None:
        self._tok = tokenizer
        self._n_special = len(SPECIAL_TOKENS)
        tid = tokenizer.token_id
        self._call_start, self._call_end = tid("<|tool_call_start|>"), tid("<|tool_call_end|>")
        self._out_start, self._out_end = tid("<|tool_output_start|>"), tid("<|tool_output_end|>")
        self._text = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._section: Literal["text", "call", "output"] = "text"
        self._call: list[int] = []
        self._output: list[int] = []

    def feed(self, token: int) -> str:
        """The text that `token` completes (often "", e.g. inside a character or a tool call)."""
        if token == self._call_start:
            self._section, self._call = "call", []
            return self._text.decode(b"", final=True)  # a tool call ends any pending character
        if token == self._call_end:
            self._section = "text"
            return ""
        if token == self._out_start:
            self._section, self._output = "output", []
            return ""
        if token == self._out_end:
            self._section = "text"
            expression = self._tok.decode(self._call).strip()
            result = self._tok.decode(self._output).strip()
            return f"[calculator: {expression} = {result}]"
        if token < self._n_special:
            return ""
        if self._section == "call":
            self._call.append(token)
            return ""
        if self._section == "output":
            self._output.append(token)
            return ""
        return self._text.decode(self._tok.token_bytes(token))

    def finish(self) -> str:
        """What is left at the end: an incomplete trailing character becomes U+FFFD."""
        return self._text.decode(b"", final=True)
