"""OpenAIServer: the Chat Completions wire protocol on 127.0.0.1, with the real API's
request validation for reasoning models and a script of answers."""

from __future__ import annotations

import json
import math
import secrets
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from ._http import LoopbackHandler, LoopbackHTTPServer, RecordedRequest, take_scripted


@dataclass
class ModelSpec:
    """What the real API enforces for one model name."""

    context_window: int
    max_output_tokens: int
    reasoning: bool
    # o1-mini / o1-preview reject 'system' and 'developer' messages...
    system_role: bool = True
    # ...and response_format other than text.
    structured_outputs: bool = True
    reasoning_effort: bool = False
    # Returned in the response's `model` (the API answers with the dated snapshot).
    snapshot: str | None = None


def default_models() -> dict[str, ModelSpec]:
    return {
        "o1": ModelSpec(200_000, 100_000, True, reasoning_effort=True, snapshot="o1-2024-12-17"),
        "o3": ModelSpec(200_000, 100_000, True, reasoning_effort=True, snapshot="o3-2025-04-16"),
        "o3-mini": ModelSpec(
            200_000, 100_000, True, reasoning_effort=True, snapshot="o3-mini-2025-01-31"
        ),
        "o4-mini": ModelSpec(
            200_000, 100_000, True, reasoning_effort=True, snapshot="o4-mini-2025-04-16"
        ),
        "o1-mini": ModelSpec(
            128_000,
            65_536,
            True,
            system_role=False,
            structured_outputs=False,
            snapshot="o1-mini-2024-09-12",
        ),
        "o1-preview": ModelSpec(
            128_000,
            32_768,
            True,
            system_role=False,
            structured_outputs=False,
            snapshot="o1-preview-2024-09-12",
        ),
        "gpt-4o": ModelSpec(128_000, 16_384, False, snapshot="gpt-4o-2024-08-06"),
        "gpt-4o-mini": ModelSpec(128_000, 16_384, False, snapshot="gpt-4o-mini-2024-07-18"),
    }


# Sampling parameters reasoning models accept only at their default value.
_DEFAULT_ONLY = {"temperature": 1, "top_p": 1, "presence_penalty": 0, "frequency_penalty": 0}
# Parameters reasoning models reject outright.
_UNSUPPORTED = ("logprobs", "top_logprobs", "logit_bias")


class APIError(Exception):
    """An error the server answers with the API's error envelope."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


def _common_prefix_len(a: str, b: str) -> int:
    # Binary search on slice equality: C-speed compares, fine for 100k-char prompts.
    lo, hi = 0, min(len(a), len(b))
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _message_text(message: Mapping[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, Mapping))
    return ""


@dataclass
class ChatRequest:
    """A parsed POST /v1/chat/completions body, passed to answer callables and recorded.
    `status` / `response` are filled in with what the server answered."""

    body: dict[str, Any]
    headers: Mapping[str, str]
    prompt_tokens: int = 0
    status: int | None = None
    response: dict[str, Any] | None = None

    @property
    def model(self) -> str:
        return str(self.body.get("model", ""))

    @property
    def messages(self) -> list[dict[str, Any]]:
        msgs = self.body.get("messages")
        return msgs if isinstance(msgs, list) else []

    def texts(self, role: str | None = None) -> list[str]:
        return [_message_text(m) for m in self.messages if role is None or m.get("role") == role]

    @property
    def prompt_text(self) -> str:
        """Every message's text, joined by blank lines."""
        return "\n\n".join(self.texts())

    @property
    def user_text(self) -> str:
        return "\n\n".join(self.texts("user"))

    @property
    def response_format(self) -> dict[str, Any] | None:
        rf = self.body.get("response_format")
        return rf if isinstance(rf, dict) else None

    @property
    def json_schema(self) -> dict[str, Any] | None:
        """The `schema` of a json_schema response_format, else None."""
        rf = self.response_format
        if rf and rf.get("type") == "json_schema":
            schema = (rf.get("json_schema") or {}).get("schema")
            return schema if isinstance(schema, dict) else None
        return None

    @property
    def max_completion_tokens(self) -> int | None:
        value = self.body.get("max_completion_tokens", self.body.get("max_tokens"))
        return value if isinstance(value, int) else None


Answer = str | dict[str, Any] | list[Any] | Callable[[ChatRequest], Any]


@dataclass
class _Reply:
    content: Answer | None = None
    refusal: str | None = None
    finish_reason: str = "stop"
    truncate_to: float | None = None  # keep this fraction of the content (finish=length)
    error: APIError | None = None
    delay: float = 0.0
    reasoning_tokens: int | None = None
    cached_tokens: int | None = None
    remaining: int = 1


_ERROR_DEFAULTS: dict[int, tuple[str, str, str | None]] = {
    400: ("Invalid request.", "invalid_request_error", None),
    401: (
        "Incorrect API key provided. You can find your API key at "
        "https://platform.openai.com/account/api-keys.",
        "invalid_request_error",
        "invalid_api_key",
    ),
    403: (
        "Project does not have access to this model.",
        "invalid_request_error",
        "model_not_found",
    ),
    408: ("Request timed out.", "timeout", None),
    429: (
        "Rate limit reached for requests. Please try again in 1s. Visit "
        "https://platform.openai.com/account/rate-limits to learn more.",
        "requests",
        "rate_limit_exceeded",
    ),
    500: (
        "The server had an error while processing your request. Sorry about that!",
        "server_error",
        None,
    ),
    502: ("Bad gateway.", "server_error", None),
    503: ("The server is overloaded or not ready yet.", "server_error", None),
}


def _strict_schema_problem(schema: Any, where: str = "()") -> str | None:
    """First violation of Structured Outputs strict mode, in the API's wording."""
    if not isinstance(schema, dict):
        return None
    is_object = schema.get("type") == "object" or (
        isinstance(schema.get("type"), list) and "object" in schema["type"]
    )
    if is_object or "properties" in schema:
        if schema.get("additionalProperties") is not False:
            return (
                f"In context={where}, 'additionalProperties' is required to be supplied "
                "and to be false."
            )
        props = schema.get("properties") or {}
        required = schema.get("required") or []
        missing = [k for k in props if k not in required]
        if missing:
            return (
                f"In context={where}, 'required' is required to be supplied and to be an "
                f"array including every key in properties. Missing '{missing[0]}'."
            )
        for name, sub in props.items():
            if problem := _strict_schema_problem(sub, f"{where[:-1]}'properties', '{name}')"):
                return problem
    for key in ("items",):
        if problem := _strict_schema_problem(schema.get(key), f"{where[:-1]}'{key}')"):
            return problem
    for key in ("anyOf", "allOf"):
        for i, sub in enumerate(schema.get(key) or []):
            if problem := _strict_schema_problem(sub, f"{where[:-1]}'{key}', '{i}')"):
                return problem
    for key in ("$defs", "definitions"):
        for name, sub in (schema.get(key) or {}).items():
            if problem := _strict_schema_problem(sub, f"{where[:-1]}'{key}', '{name}')"):
                return problem
    return None


class _OpenAIHandler(LoopbackHandler):
    owner: OpenAIServer

    def _error(self, err: APIError) -> None:
        self.send_json(err.status, err.body(), {**self.owner._common_headers(), **err.headers})

    def do_GET(self) -> None:
        rec = self.record()
        server = self.owner
        try:
            server._check_auth(rec)
        except APIError as err:
            self._error(err)
            return
        if rec.path == "/v1/models":
            self.send_json(
                200,
                {"object": "list", "data": [server._model_object(name) for name in server.models]},
                server._common_headers(),
            )
        elif rec.path.startswith("/v1/models/") and rec.path[11:] in server.models:
            self.send_json(200, server._model_object(rec.path[11:]), server._common_headers())
        elif rec.path.startswith("/v1/models/"):
            self._error(server._no_model(rec.path[11:]))
        else:
            self._error(APIError(404, f"Invalid URL (GET {rec.path})"))

    def do_POST(self) -> None:
        raw = self.read_body()
        rec = self.record(raw)
        server = self.owner
        if rec.path != "/v1/chat/completions":
            self._error(APIError(404, f"Invalid URL (POST {rec.path})"))
            return
        chat: ChatRequest | None = None
        try:
            server._check_auth(rec)
            try:
                body = json.loads(raw)
                if not isinstance(body, dict):
                    raise ValueError
            except ValueError:
                raise APIError(
                    400,
                    "We could not parse the JSON body of your request. (HINT: This likely "
                    "means you aren't using your HTTP library correctly. The OpenAI API "
                    "expects a JSON payload, but what was sent was not valid JSON.",
                ) from None
            chat = ChatRequest(body=body, headers=rec.headers)
            server._record_chat(chat)
            server._validate(chat)
            reply = server._next_reply()
            if reply.delay and self.sleep(reply.delay):
                self.close_connection = True
                return
            if reply.error is not None:
                raise reply.error
            completion = server._completion(chat, reply)
        except APIError as err:
            if chat is not None:
                chat.status, chat.response = err.status, err.body()
            self._error(err)
            return
        chat.status, chat.response = 200, completion
        if body.get("stream"):
            self._stream(completion, bool((body.get("stream_options") or {}).get("include_usage")))
        else:
            self.send_json(200, completion, server._common_headers())

    def _stream(self, completion: dict[str, Any], include_usage: bool) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Transfer-Encoding", "chunked")
        for name, value in self.owner._common_headers().items():
            self.send_header(name, value)
        self.end_headers()
        base = {
            k: completion[k]
            for k in ("id", "created", "model", "system_fingerprint", "service_tier")
        }
        base["object"] = "chat.completion.chunk"
        msg = completion["choices"][0]["message"]
        key = "refusal" if msg["refusal"] is not None else "content"
        text = msg[key] or ""
        deltas: list[dict[str, Any]] = [{"role": "assistant", "content": "", "refusal": None}]
        deltas += [{key: text[i : i + 16]} for i in range(0, len(text), 16)]
        events = [
            {**base, "choices": [{"index": 0, "delta": d, "logprobs": None, "finish_reason": None}]}
            for d in deltas
        ]
        events.append(
            {
                **base,
                "choices": [
                    {
                        "index": 0,
                        "delta": {},
                        "logprobs": None,
                        "finish_reason": completion["choices"][0]["finish_reason"],
                    }
                ],
            }
        )
        if include_usage:
            events.append({**base, "choices": [], "usage": completion["usage"]})
        frames = [f"data: {json.dumps(e)}\n\n".encode() for e in events] + [b"data: [DONE]\n\n"]
        try:
            for frame in frames:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(frame), frame))
            self.wfile.write(b"0\r\n\r\n")
        except OSError:
            self.close_connection = True


class OpenAIServer(LoopbackHTTPServer):
    """POST /v1/chat/completions and GET /v1/models[/{id}] as api.openai.com speaks them.

    Use ``OpenAI(base_url=server.base_url, api_key="anything")``. Requests are validated
    first (auth, JSON, model, reasoning-model rules, strict schema, context window); only
    valid requests consume a scripted reply. With an empty script the server uses the
    default answer (``set_default``) or, failing that, answers 500 with
    ``x-should-retry: false`` so a missing script fails fast instead of being retried.
    An answer callable that raises gets the same 500, and the error is kept in
    ``answer_failures``: leaving ``with OpenAIServer()`` raises it, so a fake model that
    could not make sense of a prompt fails the test instead of passing as a fallback.
    """

    handler_class = _OpenAIHandler

    def __init__(
        self,
        models: Mapping[str, ModelSpec] | None = None,
        *,
        api_key: str | None = None,
        chars_per_token: float = 4.0,
        prompt_cache: bool = True,
        default_reasoning_tokens: int = 192,
    ) -> None:
        super().__init__()
        self.models: dict[str, ModelSpec] = dict(models or default_models())
        self.api_key = api_key
        self.chars_per_token = chars_per_token
        self.prompt_cache = prompt_cache
        self.default_reasoning_tokens = default_reasoning_tokens
        self._script: deque[_Reply] = deque()
        self._default: _Reply | None = None
        self._chats: list[ChatRequest] = []
        self._answer_failures: list[str] = []
        self._prompts: deque[tuple[str, str]] = deque(maxlen=64)

    @property
    def base_url(self) -> str:
        """What to pass as the openai client's base_url: http://127.0.0.1:PORT/v1"""
        return self.url + "/v1"

    @property
    def chat_requests(self) -> list[ChatRequest]:
        """Every chat completion request with a JSON body, in order (rejected ones too)."""
        with self._lock:
            return list(self._chats)

    def set_context_window(self, model: str, tokens: int) -> None:
        self.models[model].context_window = tokens

    def count_tokens(self, text: str) -> int:
        return math.ceil(len(text) / self.chars_per_token)

    # script ----------------------------------------------------------------------------

    def _push(self, reply: _Reply) -> None:
        with self._lock:
            self._script.append(reply)

    def reply(
        self,
        content: Answer,
        *,
        finish_reason: str = "stop",
        delay: float = 0.0,
        reasoning_tokens: int | None = None,
        cached_tokens: int | None = None,
        times: int = 1,
    ) -> None:
        """Queue an answer. `content`: a str (sent verbatim), a dict/list (JSON-encoded),
        or a callable taking the ChatRequest and returning one of those."""
        self._push(
            _Reply(
                content=content,
                finish_reason=finish_reason,
                delay=delay,
                reasoning_tokens=reasoning_tokens,
                cached_tokens=cached_tokens,
                remaining=times,
            )
        )

    def reply_refusal(
        self,
        refusal: str = "I'm sorry, but I can't assist with that request.",
        *,
        delay: float = 0.0,
        times: int = 1,
    ) -> None:
        """message.content = null, message.refusal = text, finish_reason "stop"."""
        self._push(_Reply(refusal=refusal, delay=delay, remaining=times))

    def reply_truncated(
        self,
        content: Answer = '{"stories": [{"id": "s1", "title": "A long',
        *,
        keep: float = 0.5,
        delay: float = 0.0,
        times: int = 1,
    ) -> None:
        """finish_reason "length" with the first `keep` fraction of `content` (cut JSON).
        ``completion_tokens`` reports the request's max_completion_tokens when given."""
        self._push(
            _Reply(
                content=content,
                finish_reason="length",
                truncate_to=keep,
                delay=delay,
                remaining=times,
            )
        )

    def reply_malformed(
        self,
        text: str = '{"stories": [{"id": "s1", "title": "Unclosed"}, {"id": ',
        *,
        delay: float = 0.0,
        times: int = 1,
    ) -> None:
        """finish_reason "stop" but content that is not valid JSON."""
        self._push(_Reply(content=text, delay=delay, remaining=times))

    def reply_error(
        self,
        status: int,
        message: str | None = None,
        *,
        type: str | None = None,
        code: str | None = None,
        param: str | None = None,
        retry_after: float | str | None = None,
        headers: Mapping[str, str] | None = None,
        delay: float = 0.0,
        times: int = 1,
    ) -> None:
        """Answer `status` with the API error envelope. Message/type/code default to what
        the API sends for that status. retry_after → `Retry-After` header (seconds)."""
        dmsg, dtype, dcode = _ERROR_DEFAULTS.get(status, ("Error.", "server_error", None))
        hdrs = dict(headers or {})
        if retry_after is not None:
            hdrs["Retry-After"] = str(retry_after)
        err = APIError(
            status,
            message or dmsg,
            type=type or dtype,
            param=param,
            code=code if code is not None else dcode,
            headers=hdrs,
        )
        self._push(_Reply(error=err, delay=delay, remaining=times))

    def reply_rate_limit(
        self, retry_after: float | str | None = 1, *, quota: bool = False, times: int = 1
    ) -> None:
        """429: a rate limit (with Retry-After) or, quota=True, `insufficient_quota`."""
        if quota:
            self.reply_error(
                429,
                "You exceeded your current quota, please check your plan and billing "
                "details. For more information on this error, read the docs: "
                "https://platform.openai.com/docs/guides/error-codes/api-errors.",
                type="insufficient_quota",
                code="insufficient_quota",
                times=times,
            )
        else:
            self.reply_error(429, retry_after=retry_after, times=times)

    def set_default(self, content: Answer | None, **kwargs: Any) -> None:
        """Answer used whenever the script is empty (same kwargs as ``reply``); None
        restores the fail-fast 500."""
        self._default = None if content is None else _Reply(content=content, **kwargs)

    def clear_script(self) -> None:
        """Drop every scripted reply not yet used (the default answer stays)."""
        with self._lock:
            self._script.clear()

    @property
    def answer_failures(self) -> list[str]:
        """What each answer callable that raised said, in order."""
        with self._lock:
            return list(self._answer_failures)

    def check_answers(self) -> None:
        """Raise AssertionError if an answer callable raised."""
        if failures := self.answer_failures:
            raise AssertionError(f"the fake model could not answer: {failures[:3]}")

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
        if exc is None:
            self.check_answers()

    @property
    def pending(self) -> int:
        """Scripted replies not yet used."""
        with self._lock:
            return sum(r.remaining for r in self._script)

    def _next_reply(self) -> _Reply:
        with self._lock:
            if (reply := take_scripted(self._script)) is not None:
                return reply
        if self._default is not None:
            return self._default
        return _Reply(
            error=APIError(
                500,
                "loopback OpenAIServer: no scripted reply left and no default set",
                type="server_error",
                headers={"x-should-retry": "false"},
            )
        )

    # request handling -------------------------------------------------------------------

    def _record_chat(self, chat: ChatRequest) -> None:
        with self._lock:
            self._chats.append(chat)

    def _common_headers(self) -> dict[str, str]:
        return {
            "x-request-id": "req_" + secrets.token_hex(16),
            "openai-version": "2020-10-01",
            "openai-processing-ms": "42",
            "openai-organization": "loopback-org",
            "x-ratelimit-limit-requests": "10000",
            "x-ratelimit-remaining-requests": "9999",
            "x-ratelimit-reset-requests": "6ms",
        }

    def _model_object(self, name: str) -> dict[str, Any]:
        return {"id": name, "object": "model", "created": 1_700_000_000, "owned_by": "system"}

    def _no_model(self, name: str) -> APIError:
        return APIError(
            404,
            f"The model `{name}` does not exist or you do not have access to it.",
            code="model_not_found",
        )

    def _check_auth(self, rec: RecordedRequest) -> None:
        auth = rec.headers.get("authorization", "")
        if not auth.startswith("Bearer ") or not auth[7:].strip():
            raise APIError(
                401,
                "You didn't provide an API key. You need to provide your API "
                "key in an Authorization header using Bearer auth (i.e. "
                "Authorization: Bearer YOUR_KEY).",
            )
        if self.api_key is not None and auth[7:] != self.api_key:
            key = auth[7:]
            raise APIError(
                401,
                f"Incorrect API key provided: {key[:3]}***{key[-4:]}. You can "
                "find your API key at https://platform.openai.com/account/api-keys.",
                code="invalid_api_key",
            )

    def _validate(self, chat: ChatRequest) -> None:
        body = chat.body
        if "model" not in body:
            raise APIError(400, "you must provide a model parameter")
        spec = self.models.get(chat.model)
        if spec is None:
            raise self._no_model(chat.model)
        if not isinstance(body.get("messages"), list) or not body["messages"]:
            raise APIError(
                400,
                "Missing required parameter: 'messages'.",
                param="messages",
                code="missing_required_parameter",
            )
        for i, msg in enumerate(chat.messages):
            role = msg.get("role") if isinstance(msg, dict) else None
            if role not in ("system", "developer", "user", "assistant", "tool", "function"):
                raise APIError(
                    400,
                    f"Invalid value: '{role}'. Supported values are: 'system', "
                    "'assistant', 'user', 'function', 'tool', and 'developer'.",
                    param=f"messages[{i}].role",
                    code="invalid_value",
                )
            if role in ("system", "developer") and not spec.system_role:
                raise APIError(
                    400,
                    f"Unsupported value: 'messages[{i}].role' does not support "
                    f"'{role}' with this model.",
                    param=f"messages[{i}].role",
                    code="unsupported_value",
                )
        if spec.reasoning:
            if "max_tokens" in body:
                raise APIError(
                    400,
                    "Unsupported parameter: 'max_tokens' is not supported with "
                    "this model. Use 'max_completion_tokens' instead.",
                    param="max_tokens",
                    code="unsupported_parameter",
                )
            for name, default in _DEFAULT_ONLY.items():
                if name in body and body[name] != default:
                    raise APIError(
                        400,
                        f"Unsupported value: '{name}' does not support "
                        f"{body[name]} with this model. Only the default "
                        f"({default}) value is supported.",
                        param=name,
                        code="unsupported_value",
                    )
            for name in _UNSUPPORTED:
                if name in body:
                    raise APIError(
                        400,
                        f"Unsupported parameter: '{name}' is not supported with this model.",
                        param=name,
                        code="unsupported_parameter",
                    )
        if "reasoning_effort" in body:
            if not spec.reasoning_effort:
                raise APIError(
                    400,
                    "Unsupported parameter: 'reasoning_effort' is not supported with this model.",
                    param="reasoning_effort",
                    code="unsupported_parameter",
                )
            if body["reasoning_effort"] not in ("low", "medium", "high"):
                raise APIError(
                    400,
                    f"Invalid value: '{body['reasoning_effort']}'. Supported "
                    "values are: 'low', 'medium', and 'high'.",
                    param="reasoning_effort",
                    code="invalid_value",
                )
        self._validate_response_format(chat, spec)
        limit = chat.max_completion_tokens
        if limit is not None and limit > spec.max_output_tokens:
            param = "max_tokens" if "max_tokens" in body else "max_completion_tokens"
            raise APIError(
                400,
                f"max_tokens is too large: {limit}. This model supports at "
                f"most {spec.max_output_tokens} completion tokens, whereas you "
                f"provided {limit}.",
                param=param,
                code="invalid_value",
            )
        chat.prompt_tokens = self._prompt_tokens(chat)
        if chat.prompt_tokens + (limit or 0) > spec.context_window:
            if limit:
                detail = (
                    f"However, you requested {chat.prompt_tokens + limit} tokens "
                    f"({chat.prompt_tokens} in the messages, {limit} in the completion)."
                    " Please reduce the length of the messages or completion."
                )
            else:
                detail = (
                    f"However, your messages resulted in {chat.prompt_tokens} tokens. "
                    "Please reduce the length of the messages."
                )
            raise APIError(
                400,
                f"This model's maximum context length is {spec.context_window} tokens. {detail}",
                param="messages",
                code="context_length_exceeded",
            )

    def _validate_response_format(self, chat: ChatRequest, spec: ModelSpec) -> None:
        rf = chat.body.get("response_format")
        if rf is None:
            return
        kind = rf.get("type") if isinstance(rf, dict) else None
        if kind not in ("text", "json_object", "json_schema"):
            raise APIError(
                400,
                f"Invalid value: '{kind}'. Supported values are: 'text', "
                "'json_object', and 'json_schema'.",
                param="response_format.type",
                code="invalid_value",
            )
        if kind != "text" and not spec.structured_outputs:
            raise APIError(
                400,
                f"Invalid parameter: 'response_format' of type '{kind}' is not "
                "supported with this model. Learn more about supported models at "
                "the Structured Outputs guide: "
                "https://platform.openai.com/docs/guides/structured-outputs",
                param="response_format",
            )
        if kind == "json_object" and "json" not in chat.prompt_text.lower():
            raise APIError(
                400,
                "'messages' must contain the word 'json' in some form, to use "
                "'response_format' of type 'json_object'.",
                param="messages",
            )
        if kind == "json_schema":
            js = rf.get("json_schema")
            if not isinstance(js, dict) or not js.get("name"):
                raise APIError(
                    400,
                    "Missing required parameter: 'response_format.json_schema.name'.",
                    param="response_format.json_schema.name",
                    code="missing_required_parameter",
                )
            if js.get("strict"):
                problem = _strict_schema_problem(js.get("schema"))
                if problem:
                    raise APIError(
                        400,
                        f"Invalid schema for response_format '{js['name']}': {problem}",
                        param="response_format",
                        code="invalid_json_schema",
                    )

    def _prompt_tokens(self, chat: ChatRequest) -> int:
        # ≈ chars/token per message plus the chat format's few tokens of framing; a schema
        # in response_format counts too, as it does for the real API.
        tokens = 3 + sum(4 + self.count_tokens(t) for t in chat.texts())
        if chat.json_schema is not None:
            tokens += self.count_tokens(json.dumps(chat.json_schema))
        return tokens

    def _cached_tokens(self, chat: ChatRequest) -> int:
        # Prompt caching: the longest prefix shared with an earlier prompt for the same
        # model, in 128-token steps, counts once it reaches 1,024 tokens.
        text = chat.prompt_text
        with self._lock:
            earlier = [p for m, p in self._prompts if m == chat.model]
            self._prompts.append((chat.model, text))
        best = max((_common_prefix_len(text, p) for p in earlier), default=0)
        tokens = min(self.count_tokens(text[:best]), chat.prompt_tokens)
        return tokens // 128 * 128 if tokens >= 1024 else 0

    def _answer(self, chat: ChatRequest, content: Answer | None) -> Any:
        if not callable(content):
            return content
        try:
            return content(chat)
        except Exception as error:  # any failure of a test's answer is the test's to see
            with self._lock:
                self._answer_failures.append(f"{type(error).__name__}: {error}")
            raise APIError(
                500,
                f"loopback OpenAIServer: the answer callable raised {error!r}",
                type="server_error",
                headers={"x-should-retry": "false"},
            ) from None

    def _completion(self, chat: ChatRequest, reply: _Reply) -> dict[str, Any]:
        spec = self.models[chat.model]
        content = self._answer(chat, reply.content)
        if content is not None and not isinstance(content, str):
            content = json.dumps(content)
        finish = reply.finish_reason
        reasoning = reply.reasoning_tokens
        if reasoning is None:
            reasoning = self.default_reasoning_tokens if spec.reasoning else 0
        limit = chat.max_completion_tokens
        if content is not None and reply.truncate_to is not None:
            content = content[: int(len(content) * reply.truncate_to)]
        elif content is not None and limit is not None:
            # Like the real API: reasoning and visible tokens share max_completion_tokens;
            # when they run out the answer is cut (possibly to nothing) with "length".
            room = max(0, limit - reasoning)
            if self.count_tokens(content) > room:
                content = content[: int(room * self.chars_per_token)]
                reasoning = min(reasoning, limit)
                finish = "length"
        visible = self.count_tokens(content or reply.refusal or "")
        completion_tokens = reasoning + visible
        if finish == "length" and limit is not None:
            completion_tokens = max(completion_tokens, limit)
        cached = reply.cached_tokens
        if cached is None:
            cached = self._cached_tokens(chat) if self.prompt_cache else 0
        return {
            "id": "chatcmpl-" + secrets.token_urlsafe(21).replace("-", "x").replace("_", "y"),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": spec.snapshot or chat.model,
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": content if reply.refusal is None else None,
                        "refusal": reply.refusal,
                        "annotations": [],
                    },
                    "logprobs": None,
                    "finish_reason": finish,
                }
            ],
            "usage": {
                "prompt_tokens": chat.prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": chat.prompt_tokens + completion_tokens,
                "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
                "completion_tokens_details": {
                    "reasoning_tokens": reasoning,
                    "audio_tokens": 0,
                    "accepted_prediction_tokens": 0,
                    "rejected_prediction_tokens": 0,
                },
            },
            "service_tier": "default",
            "system_fingerprint": "fp_loopback",
        }


__all__ = ["APIError", "ChatRequest", "ModelSpec", "OpenAIServer", "default_models"]
