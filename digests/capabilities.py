"""What each model family can do and what it costs, so one request shape fits every endpoint.

Looked up by the longest matching name prefix (``o1-2024-12-17`` is ``o1``). A model the table
does not know (a local OpenAI-compatible server, usually) gets the most conservative
capabilities: schema in the user message, no developer role, no reasoning effort.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.config import LLMConfig, Price


@dataclass(frozen=True)
class Capabilities:
    family: str
    structured_outputs: bool  # response_format json_schema (strict)
    developer_role: bool  # accepts a developer message
    reasoning_effort: bool  # accepts reasoning_effort
    minimal_effort: bool  # accepts reasoning_effort "minimal"
    context_window: int  # tokens, prompt and completion together
    max_output_tokens: int  # the largest max_completion_tokens it accepts
    encoding: str  # tiktoken encoding name
    price: Price | None  # US dollars per million tokens; None: unknown


def _price(input: float, cached: float, output: float) -> Price:
    return Price(input=input, cached_input=cached, output=output)


# Published list prices (USD per 1M tokens) and limits; `llm.prices` in config overrides them.
_TABLE: tuple[Capabilities, ...] = (
    Capabilities(
        "o1", True, True, True, False, 200_000, 100_000, "o200k_base", _price(15, 7.5, 60)
    ),
    Capabilities(
        "o1-mini", False, False, False, False, 128_000, 65_536, "o200k_base", _price(1.1, 0.55, 4.4)
    ),
    Capabilities(
        "o1-preview", False, False, False, False, 128_000, 32_768, "o200k_base", _price(15, 7.5, 60)
    ),
    Capabilities("o3", True, True, True, False, 200_000, 100_000, "o200k_base", _price(2, 0.5, 8)),
    Capabilities(
        "o3-mini", True, True, True, False, 200_000, 100_000, "o200k_base", _price(1.1, 0.55, 4.4)
    ),
    Capabilities(
        "o4-mini", True, True, True, False, 200_000, 100_000, "o200k_base", _price(1.1, 0.275, 4.4)
    ),
    Capabilities(
        "gpt-5", True, True, True, True, 400_000, 128_000, "o200k_base", _price(1.25, 0.125, 10)
    ),
    Capabilities(
        "gpt-5-mini", True, True, True, True, 400_000, 128_000, "o200k_base", _price(0.25, 0.025, 2)
    ),
    Capabilities(
        "gpt-4.1", True, True, False, False, 1_047_576, 32_768, "o200k_base", _price(2, 0.5, 8)
    ),
    Capabilities(
        "gpt-4.1-mini",
        True,
        True,
        False,
        False,
        1_047_576,
        32_768,
        "o200k_base",
        _price(0.4, 0.1, 1.6),
    ),
    Capabilities(
        "gpt-4o", True, True, False, False, 128_000, 16_384, "o200k_base", _price(2.5, 1.25, 10)
    ),
    Capabilities(
        "gpt-4o-mini",
        True,
        True,
        False,
        False,
        128_000,
        16_384,
        "o200k_base",
        _price(0.15, 0.075, 0.6),
    ),
)

# Many local servers (llama.cpp, Ollama, vLLM without guided decoding) fall here.
UNKNOWN = Capabilities("unknown", False, False, False, False, 32_768, 8_192, "o200k_base", None)


def capabilities(model: str) -> Capabilities:
    matches = [
        entry for entry in _TABLE if model == entry.family or model.startswith(entry.family + "-")
    ]
    # "o1-mini" also starts with "o1-": the longest family name is the most specific.
    return max(matches, key=lambda entry: len(entry.family), default=UNKNOWN)


def price_for(llm: LLMConfig, model: str) -> Price | None:
    """The config's price for this model (or its family), else the table's."""
    table = capabilities(model)
    return llm.prices.get(model) or llm.prices.get(table.family) or table.price


def cost(price: Price | None, input: int, cached: int, output: int) -> float:
    """Estimated US dollars; reasoning tokens are billed as output and included in it."""
    if price is None:
        return 0.0
    uncached = max(0, input - cached)
    return (uncached * price.input + cached * price.cached_input + output * price.output) / 1e6
