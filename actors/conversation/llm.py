"""The LLM brain: OpenAI's Chat Completions API, which OpenAI-compatible servers (Ollama, vLLM,
llama.cpp) speak too.

The model answers a JSON object `{"reply", "lead": {...}}`. An invalid answer gets one repair
round with the validation errors; 429, 5xx and network errors are retried with exponential
backoff and jitter. What still fails raises a `BrainError`, and the turn gets the fallback.

Each attempt takes a slot of the model gate (`model_gate.py`) and tells it how the model
answered, so bursts wait their turn there (spending the turn's time, not its attempts) and
the number of calls at once follows what the model server takes."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx2
import openai
import trio
from openai.types.chat import ChatCompletionMessageParam
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt
from tenacity.wait import wait_random_exponential

from actors.statistics import LLMStatistics
from store.leads import CLASSIFICATIONS, LeadClass, LeadFields

from .brain import BrainReply, BrainTurn, OnChunk
from .completions import ChatCompletions, ConnectionFailed, TimedOut
from .errors import BrainError, LLMInvalidOutput, LLMOverloaded, LLMTransient, LLMUnavailable
from .model_gate import INITIAL_LIMIT, ModelGate
from .streaming import ReplyStreamExtractor

log = logging.getLogger("conversation.llm")

RETRY_INITIAL_WAIT = 0.5  # seconds
RETRY_MAX_WAIT = 8.0
_LEAD_KEYS = {
    "nombre": "name",
    "telefono": "phone",
    "email": "email",
    "servicio": "service",
    "comuna": "area",
    "urgencia": "urgency",
}


@dataclass(frozen=True)
class LLMOptions:
    model: str
    temperature: float
    max_tokens: int
    max_attempts: int


class OpenAIBrain:
    def __init__(
        self,
        client: openai.AsyncOpenAI,
        options: LLMOptions,
        stats: LLMStatistics | None = None,
        gate: ModelGate | None = None,
        completions: ChatCompletions | None = None,
    ) -> None:
        self.client = client  # streams; and every call when `completions` is None
        self.completions = completions  # the non-streaming call, on our own connections
        self.options = options
        self.stats = stats if stats is not None else LLMStatistics()
        self.gate = gate if gate is not None else ModelGate(INITIAL_LIMIT)

    async def reply(self, turn: BrainTurn, on_chunk: OnChunk | None = None) -> BrainReply:
        deadline = trio.current_effective_deadline()  # the turn's
        queue = _Queue()
        try:
            answer = await self._reply(turn, on_chunk, queue)
        except trio.Cancelled:
            timed_out = trio.current_time() >= deadline
            if queue.waiting and not queue.sent:
                self.stats.waited_out += 1  # never called: the model was busy, not failing
                raise
            # The turn's deadline (or a shutdown) cut the call: a failure of the model all
            # the same, which the counters must show.
            self.stats.failed("model timed out" if timed_out else "cancelled", timeout=timed_out)
            raise
        except BrainError as exc:
            self.stats.failed(str(exc), timeout=_timed_out(exc))
            raise
        except Exception as exc:  # not ours to handle, but still a call that failed
            self.stats.failed(f"unexpected {type(exc).__name__}")
            raise
        self.stats.answered()
        return answer

    async def _reply(self, turn: BrainTurn, on_chunk: OnChunk | None, queue: _Queue) -> BrainReply:
        messages: list[ChatCompletionMessageParam] = [
            {"role": "system", "content": turn.system_prompt},
            *(_chat_message(line.role, line.content) for line in turn.history),
        ]
        raw, usage = await self._with_retries(messages, on_chunk, queue)
        try:
            parsed = parse_answer(raw)
        except LLMInvalidOutput as invalid:
            self.stats.repairs += 1
            log.warning("model answer invalid, asking for a repair: %s", invalid)
            repair = [
                *messages,
                _chat_message("assistant", raw),
                _chat_message(
                    "user",
                    "Tu respuesta anterior no cumple el formato pedido: "
                    f"{invalid}. Responde de nuevo solo con el objeto JSON "
                    '{"reply": "...", "lead": {...}}, sin texto fuera de él.',
                ),
            ]
            raw, more = await self._with_retries(repair, None, queue)
            usage = (usage[0] + more[0], usage[1] + more[1])
            parsed = parse_answer(raw)
        text, lead, classification = parsed
        self.stats.prompt_tokens += usage[0]
        self.stats.completion_tokens += usage[1]
        return BrainReply(
            text=text,
            lead=lead,
            classification=classification,
            source="llm",
            model=self.options.model,
            prompt_tokens=usage[0],
            completion_tokens=usage[1],
        )

    async def _with_retries(
        self,
        messages: list[ChatCompletionMessageParam],
        on_chunk: OnChunk | None,
        queue: _Queue,
    ) -> tuple[str, tuple[int, int]]:
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(LLMTransient),
            stop=stop_after_attempt(self.options.max_attempts),
            wait=wait_random_exponential(multiplier=RETRY_INITIAL_WAIT, max=RETRY_MAX_WAIT),
            sleep=trio.sleep,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                if attempt.retry_state.attempt_number > 1:
                    self.stats.retries += 1
                return await self._complete(messages, on_chunk, queue)
        raise AssertionError("unreachable: tenacity either returns or reraises")

    async def _complete(
        self,
        messages: list[ChatCompletionMessageParam],
        on_chunk: OnChunk | None,
        queue: _Queue,
    ) -> tuple[str, tuple[int, int]]:
        """One attempt: a slot of the gate, one call, and what the model said of its load."""
        queue.waiting = True
        async with self.gate.slot() as call:
            queue.waiting = False
            queue.sent += 1
            self.stats.calls += 1
            with self.stats.latency.timing():
                try:
                    return await self._post(messages, on_chunk)
                except LLMOverloaded as exc:
                    call.overloaded(exc.reason, exc.retry_after)
                    raise

    async def _post(
        self, messages: list[ChatCompletionMessageParam], on_chunk: OnChunk | None
    ) -> tuple[str, tuple[int, int]]:
        if on_chunk is None and self.completions is not None:
            return await self._post_lean(messages)
        try:
            if on_chunk is None:
                # The client's own POST (its auth, timeouts and error mapping) with a body we
                # build: `chat.completions.create` re-validates every message through typing
                # introspection and builds pydantic models, 3.6 ms of CPU a call here (bench/).
                response = await self.client.post(
                    "/chat/completions", cast_to=httpx2.Response, body=self._body(messages)
                )
                return read_completion(response.content)
            return await self._stream(messages, on_chunk)
        except openai.APIStatusError as exc:
            if exc.status_code == 429 or exc.status_code >= 500:
                raise LLMOverloaded(
                    f"model server answered {exc.status_code}",
                    str(exc.status_code),
                    retry_after(exc.response.headers),
                ) from exc
            raise LLMUnavailable(f"model server refused: {exc.status_code}") from exc
        except openai.APITimeoutError as exc:
            raise LLMOverloaded(f"model server timed out: {type(exc).__name__}", "timeout") from exc
        except openai.APIConnectionError as exc:
            raise LLMTransient(f"model server unreachable: {type(exc).__name__}") from exc

    async def _post_lean(
        self, messages: list[ChatCompletionMessageParam]
    ) -> tuple[str, tuple[int, int]]:
        """The non-streaming call on our own connections, errors mapped as the SDK's are."""
        assert self.completions is not None
        try:
            answer = await self.completions.post(self._body(messages))
        except TimedOut as exc:
            raise LLMOverloaded(f"model server timed out: {exc}", "timeout") from exc
        except ConnectionFailed as exc:
            raise LLMTransient(f"model server unreachable: {exc}") from exc
        if answer.status == 429 or answer.status >= 500:
            raise LLMOverloaded(
                f"model server answered {answer.status}",
                str(answer.status),
                retry_after(answer.headers),
            )
        if answer.status >= 400:
            raise LLMUnavailable(f"model server refused: {answer.status}")
        return read_completion(answer.content)

    def _body(self, messages: list[ChatCompletionMessageParam]) -> dict[str, Any]:
        return {
            "model": self.options.model,
            "messages": messages,
            "temperature": self.options.temperature,
            "max_tokens": self.options.max_tokens,
            "response_format": {"type": "json_object"},
        }

    async def _stream(
        self, messages: list[ChatCompletionMessageParam], on_chunk: OnChunk
    ) -> tuple[str, tuple[int, int]]:
        extractor = ReplyStreamExtractor()
        pieces: list[str] = []
        usage = (0, 0)
        stream = await self.client.chat.completions.create(
            model=self.options.model,
            messages=messages,
            temperature=self.options.temperature,
            max_tokens=self.options.max_tokens,
            response_format={"type": "json_object"},
            stream=True,
            stream_options={"include_usage": True},
        )
        async with stream:
            async for chunk in stream:
                if chunk.usage:
                    usage = (chunk.usage.prompt_tokens, chunk.usage.completion_tokens)
                if not chunk.choices:
                    continue
                delta = chunk.choices[0].delta.content or ""
                if delta:
                    pieces.append(delta)
                    visible = extractor.feed(delta)
                    if visible:
                        await on_chunk(visible)
        return "".join(pieces), usage


@dataclass
class _Queue:
    """A turn's place in the model gate: waiting for a slot, and its calls sent so far."""

    waiting: bool = False
    sent: int = 0


def _timed_out(exc: BaseException) -> bool:
    return isinstance(exc.__cause__, openai.APITimeoutError | TimedOut)


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds the model server asked us to wait: OpenAI's `retry-after-ms`, or the standard
    `Retry-After` (seconds, or an HTTP date); None when it did not say or said nonsense."""
    try:
        if (ms := headers.get("retry-after-ms")) is not None:
            return max(0.0, float(ms) / 1000)
        raw = headers.get("retry-after")
        if raw is None:
            return None
        if raw.strip().replace(".", "", 1).isdigit():
            return float(raw)
        when = parsedate_to_datetime(raw)
    except (ValueError, TypeError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def read_completion(raw: bytes) -> tuple[str, tuple[int, int]]:
    """Content and token usage of a Chat Completions answer."""
    try:
        data = json.loads(raw)
        content = data["choices"][0]["message"]["content"] or ""
        usage = data.get("usage") or {}
        tokens = (int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0))
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise LLMTransient(f"model server sent a malformed completion: {exc!r}") from None
    if not isinstance(content, str):
        raise LLMTransient("model server sent a completion without text")
    return content, tokens


def _chat_message(role: str, content: str) -> ChatCompletionMessageParam:
    if role == "assistant":
        return {"role": "assistant", "content": content}
    return {"role": "user", "content": content}


def parse_answer(raw: str) -> tuple[str, LeadFields, LeadClass]:
    """Validate the model's JSON; raise `LLMInvalidOutput` naming what is wrong."""
    try:
        data: Any = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise LLMInvalidOutput(f"no es JSON válido ({exc.msg})") from None
    if not isinstance(data, dict):
        raise LLMInvalidOutput("la raíz debe ser un objeto")
    reply = data.get("reply")
    if not isinstance(reply, str) or not reply.strip():
        raise LLMInvalidOutput('falta "reply" (texto no vacío)')
    lead = data.get("lead", {})
    if not isinstance(lead, dict):
        raise LLMInvalidOutput('"lead" debe ser un objeto')
    values: dict[str, str | None] = {}
    for spanish, english in _LEAD_KEYS.items():
        value = lead.get(spanish, lead.get(english))
        if value is not None and not isinstance(value, str | int | float):
            raise LLMInvalidOutput(f'"lead.{spanish}" debe ser texto o null')
        values[english] = str(value).strip() or None if value is not None else None
    said = lead.get("estado", "frio")
    classification: LeadClass = next((c for c in CLASSIFICATIONS if c == said), "frio")
    return reply.strip(), LeadFields(**values), classification
