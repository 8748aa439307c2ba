"""Chile's 346 comunas (shipped as data), so that "vivo en Puente Alto" is recorded — and seen
to be outside coverage — even when the business lists only its own comunas.

Some comunas are also everyday words or names ("Independencia", "Caldera", "Victoria",
"Castro"): those count only right after "en" or "comuna", or as the whole answer to
"¿En qué comuna estás?"."""

from __future__ import annotations

import json
import re
from pathlib import Path

from sales.business import fold

DATA = Path(__file__).parent / "data" / "comunas_cl.json"


def _load() -> tuple[str, ...]:
    rows = json.loads(DATA.read_text(encoding="utf-8"))
    return tuple(str(row["comuna"]) for row in rows)


COMUNAS: tuple[str, ...] = _load()

# Comunas whose names are everyday words, first names or surnames.
AMBIGUOUS = (
    "Independencia, Recoleta, Colina, Pica, Constitución, Camarones, Navidad, Porvenir,"
    " Primavera, Victoria, Nacimiento, Retiro, Empedrado, Coronel, Caldera, Mejillones,"
    " Vicuña, Canela, Corral, Fresia, Lautaro, Freire, Saavedra, Molina, Linares, Castro,"
    " Pinto, Olivar, Calera, Laja, Lota, Antártica, Cabrero, Palena, Bulnes, Ercilla,"
    " Cochrane, Cisnes, Parral, Portezuelo, La Cruz, El Carmen, Santa Cruz, San Pedro,"
    " Santo Domingo, Río Verde, Lago Verde, La Unión, Los Lagos, Alto del Carmen, Maule,"
    " Aysén, La Higuera, El Tabo, Futrono, Salamanca, Teno, Hualqui, Penco, Tomé, Rengo"
)
_DISPLAY = {" ".join(fold(c).replace("'", " ").split()): c for c in COMUNAS}
AMBIGUOUS_PLACES = frozenset(
    key for name in AMBIGUOUS.split(",") if (key := " ".join(fold(name).split())) in _DISPLAY
)
_AFTER_LOCATIVE = re.compile(
    r"\b(?:en|comuna|comuna de|sector)\s+("
    + "|".join(re.escape(k) for k in sorted(AMBIGUOUS_PLACES, key=len, reverse=True))
    + r")\b"
)


def ambiguous_after_locative(normalized: str) -> list[str]:
    """Ambiguous comunas named after "en"/"comuna"/"sector", or as the whole text."""
    found: list[str] = []
    whole = normalized.strip()
    if whole in AMBIGUOUS_PLACES:
        found.append(_DISPLAY[whole])
    for match in _AFTER_LOCATIVE.finditer(normalized):
        place = _DISPLAY[match.group(1)]
        if place not in found:
            found.append(place)
    return found
