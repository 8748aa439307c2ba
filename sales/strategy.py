"""The commercial strategy the owner sets in the dashboard, told to the model with the
business's rules: main objective, when a lead is hot, tone, how insistent to be."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

INSISTENCE = {
    "baja": "no insistas: si el cliente no quiere dar un dato, sigue ayudando sin volver a pedirlo",
    "media": "pide cada dato que falte una vez, y una segunda vez más adelante si hace falta",
    "alta": "busca cerrar: pide los datos que falten y propone agendar en cada respuesta",
}


class Strategy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    objetivoPrincipal: str = Field(min_length=1, max_length=500)
    criteriosLeadCaliente: list[str] = Field(default_factory=list, max_length=20)
    tono: str = Field(default="cercano y profesional", max_length=200)
    insistencia: Literal["baja", "media", "alta"] = "media"


def render(strategy: Strategy) -> str:
    lines = ["ESTRATEGIA COMERCIAL", f"- Objetivo principal: {strategy.objetivoPrincipal}"]
    if strategy.criteriosLeadCaliente:
        criteria = "; ".join(c.strip() for c in strategy.criteriosLeadCaliente if c.strip())
        lines.append(f"- Un cliente es prioritario cuando: {criteria}")
    lines.append(f"- Tono: {strategy.tono}")
    lines.append(f"- Insistencia {strategy.insistencia}: {INSISTENCE[strategy.insistencia]}")
    return "\n".join(lines)
