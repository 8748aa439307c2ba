"""Names: what tells a person's name from everything else they may write or answer to
"¿Cómo te llamas?".

A name is not a question, a greeting, a courtesy, a verb or a filler: those words are listed
here. First names common in Chile ship as data (`data/nombres_cl.txt`); a short answer whose
first word is one of them is read as a name, and an unknown word only when nothing else in
the answer says it is something else."""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cache
from pathlib import Path

from sales.business import fold

from .text import normalize

DATA = Path(__file__).parent / "data"

# Greetings, courtesies, fillers, pronouns, articles, question words and the verbs people
# open a sentence with, folded. None of them starts a name.
NOT_NAMES = frozenset(
    """
    hola holi wena wenas buenas buenos buena bueno buen dia dias tardes noches saludos hello hi
    gracias grax muchas mil ok okey oka okis dale ya si no nop sip claro perfecto listo bacan
    genial excelente super vale bien mal ahi aca alla aqui igual nada todo algo eso esto esa ese
    de del la el los las un una unos unas al y o u e en con para por que muy tan mas menos yo tu
    usted ustedes su sus mi mis me te se le les nos lo nosotros ellos ella el ellas
    como cuando donde quien quienes cual cuales cuanto cuanta cuantos cuantas porque pq xq
    atienden atiende tienen tiene tengo hacen hace hago pueden puede puedo podrian podria
    quiero quisiera queria necesito necesita necesitamos busco buscamos estoy esta estamos
    soy somos es son era fue sera vivo vive trabajan trabaja cobran cobra cuesta cuestan
    sale salen vale valen llegan llega van va voy vamos instalan instala reparan repara
    venden vende hay habia tenia sirve sirven funciona gotea prende enciende
    cliente clienta dueno duena nuevo nueva interesado interesada administrador
    administradora encargado encargada vecino vecina propietario propietaria estudiante
    ingeniero ingeniera tecnico tecnica arquitecto arquitecta profesor profesora medico
    doctora senor senora sr sra don dona persona alguien otro otra urgente hoy manana mismo
    misma ahora luego despues antes pronto altiro tiro po cachai oye oiga disculpa disculpe
    perdon permiso favor porfa porfavor pls please consulta pregunta duda info informacion
    precio precios valor valores horario horarios cotizacion presupuesto servicio servicios
    aire aires equipo equipos split mantencion instalacion reparacion calefaccion
    lunes martes miercoles jueves viernes sabado domingo semana mes ano
    mama papa hijo hija esposo esposa marido mujer hermano hermana abuela abuelo tio tia
    jajaja jaja jeje xd emoji pucha puta chuta oh ah uf caro cara barato completo
    creadora creador influencer dra dr
    """.split()
)
NAME_STOP = frozenset("de del y en con para por que desde a al pero".split())


@cache
def first_names() -> frozenset[str]:
    """Common first names, folded."""
    path = DATA / "nombres_cl.txt"
    if not path.exists():
        return frozenset()
    names = {fold(line.strip()) for line in path.read_text(encoding="utf-8").splitlines()}
    return frozenset(n for n in names if n and not n.startswith("#"))


def is_name_word(word: str) -> bool:
    return fold(word) in first_names()


def not_a_name(word: str) -> bool:
    return fold(word) in NOT_NAMES


NAME_PHRASE = re.compile(
    r"(?:^|[^\w])(me llamo|me yamo|me iamo|mi nombre completo es|mi nombre es|mi nombre:|"
    r"mi nombre seria|soy|habla|te escribe|le escribe|les escribe|aqui|aquí)"
    r"\s+(?:(?:la|el|don|doña|dona|sr|sra|señora|senora|dr|dra|doctor|doctora)\.?\s+)?"
    r"([^\W\d_]+(?:\s+[^\W\d_]+){0,3})",
    re.IGNORECASE,
)
FILLER = re.compile(
    r"^\s*(?:(?:ok|oka|okey|ya|si|sí|bueno|dale|claro|listo|perfecto|hola|buenas|ah|oh|"
    r"jaja\w*|jeje\w*|perdon|perdón)\b[\s,.!:-]*)+",
    re.IGNORECASE,
)
NAME_BEFORE = re.compile(r"([^\W\d_]+(?:\s+[^\W\d_]+){0,2})\s*,?\s+es mi nombre", re.IGNORECASE)


def name_in_phrase(text: str) -> str | None:
    """A name after "me llamo"/"mi nombre es" (any word that is not something else), or
    after the weaker "soy"/"habla"/"aquí" only when it is a first name we know ("soy
    creadora de contenido" is no name); or before "es mi nombre"."""
    for match in NAME_PHRASE.finditer(text):
        name = clean_name(match.group(2))
        weak = fold(match.group(1)) in ("soy", "habla", "aqui")
        if name and (not weak or is_name_word(name.split()[0])):
            return name
    before = NAME_BEFORE.search(text)
    if before:
        name = clean_name(before.group(1).split(",")[-1])
        if name and is_name_word(name.split()[0]):
            return name
    return None


def clean_name(raw: str) -> str | None:
    """A name from the words after "me llamo"/"soy": up to three words, stopping at a
    linking word; None when the first word is not a name ("soy de Maipú", "soy la hija")."""
    kept: list[str] = []
    for word in re.findall(r"[^\W\d_]+", raw):
        if fold(word) in NAME_STOP or (kept and not_a_name(word)):
            break
        kept.append(word)
        if len(kept) == 3:
            break
    if not kept or not_a_name(kept[0]) or len(kept[0]) < 2:
        return None
    return " ".join(w[:1].upper() + w[1:].lower() for w in kept)


def short_name(text: str) -> str | None:
    """A short answer to "¿Cómo te llamas?" read as a name only when it looks like one: no
    question, no digits, no word that is a greeting, courtesy or verb; a first name we know,
    or one or two words that are nothing else."""
    if "?" in text or "¿" in text or re.search(r"\d|@", text):
        return None
    raw = re.findall(r"[^\W\d_]+", text)
    if not raw or len(raw) > 3 or any(not_a_name(w) and fold(w) not in NAME_STOP for w in raw):
        return None
    if not is_name_word(raw[0]):
        return None
    return clean_name(text)


def answered_name(text: str, is_other: Callable[[str], bool]) -> str | None:
    """The name in an answer to "¿Cómo te llamas?": its first clause ("Hernán Rivas, estoy
    en Vitacura"; "ok, Cristián Vidal"), only when that clause is a name and nothing else."""
    for clause in re.split(r"[,.;:!?\n]| y | e |\(", FILLER.sub("", text, count=1))[:3]:
        # The leading words only, up to an emoji or anything else: "Catalina 😊 oye…".
        lead = re.match(r"\s*((?:[^\W\d_]+\s*){1,3})", clause)
        if lead is None:
            continue
        candidate = lead.group(1).strip()
        normalized = normalize(candidate)
        if not normalized or is_other(normalized):  # a comuna, a service
            continue
        name = short_name(candidate)
        if name:
            return name
    return None
