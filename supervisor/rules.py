"""Building what the turn follows (`TurnRules`) and the model brain of one incarnation of the
conversation actor, from the settings, the business config, the prompt and the strategy."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import openai
import trio

from actors.conversation.brain import Brain
from actors.conversation.completions import ChatCompletions, proxy_configured
from actors.conversation.llm import LLMOptions, OpenAIBrain
from actors.conversation.model_gate import ModelGate
from actors.conversation.offline import OfflineBrain
from actors.conversation.prompt import system_prompt
from actors.conversation.turn import TurnRules
from actors.statistics import LLMStatistics
from sales.business import BusinessConfig
from sales.channels import CHANNELS
from sales.classify import ClassifierStatistics, LeadClassifier
from sales.failpoints import Failpoints
from sales.settings import Settings
from sales.strategy import Strategy
from sales.strategy import render as render_strategy
from sales.text import OptOut


def strategy_text(stored: str) -> str:
    """What the model is told of a stored strategy ("" when there is none)."""
    return render_strategy(Strategy.model_validate_json(stored)) if stored else ""


def turn_rules(
    business: BusinessConfig,
    settings: Settings,
    *,
    prompt: str,
    strategy: str,
    stats: ClassifierStatistics,
    failpoints: Failpoints,
) -> TurnRules:
    """One version of the rules: `prompt` is the owner's rules text, `strategy` the
    strategy's text as the model reads it."""
    told = "\n\n".join(filter(None, (prompt, strategy)))
    return TurnRules(
        business=business,
        classifier=LeadClassifier(business, settings, stats, failpoints),
        opt_out=OptOut(business.leadRules.optOutPhrases),
        system_prompts={channel: system_prompt(business, told, channel) for channel in CHANNELS},
        offline=OfflineBrain(business),
    )


@asynccontextmanager
async def model_brain(
    settings: Settings, stats: LLMStatistics, gate: ModelGate
) -> AsyncIterator[Brain | None]:
    """The model brain for one incarnation (None when offline); its client is always closed
    after use."""
    if settings.offline:
        yield None
        return
    async with openai.AsyncOpenAI(
        api_key=settings.openai_api_key,
        base_url=settings.openai_base_url,
        timeout=settings.openai_timeout,
        max_retries=0,  # ours, with backoff and jitter, in the brain
    ) as client:
        completions = (
            None
            if proxy_configured()
            else ChatCompletions(
                settings.openai_base_url, settings.openai_api_key or "", settings.openai_timeout
            )
        )
        try:
            yield OpenAIBrain(
                client,
                LLMOptions(
                    settings.openai_model,
                    settings.openai_temperature,
                    settings.openai_max_tokens,
                    settings.openai_max_retries,
                ),
                stats,
                gate,
                completions,
            )
        finally:
            if completions is not None:
                with trio.CancelScope(shield=True):
                    await completions.aclose()
