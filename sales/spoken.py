"""Numbers said in words, as voice dictation writes them: "nueve ocho siete seis, cincuenta
y cuatro, treinta y dos, diez" → "9876 54 32 10". Only runs of number words are rewritten, so
a phone dictated digit by digit or in pairs reaches the phone matcher as digits."""

from __future__ import annotations

import re

from sales.business import fold

UNITS = {
    "cero": 0, "uno": 1, "un": 1, "una": 1, "dos": 2, "tres": 3, "cuatro": 4, "cinco": 5,
    "seis": 6, "siete": 7, "ocho": 8, "nueve": 9,
}  # fmt: skip
TEENS = {
    "diez": 10, "once": 11, "doce": 12, "trece": 13, "catorce": 14, "quince": 15,
    "dieciseis": 16, "diecisiete": 17, "dieciocho": 18, "diecinueve": 19, "veinte": 20,
    "veintiuno": 21, "veintidos": 22, "veintitres": 23, "veinticuatro": 24,
    "veinticinco": 25, "veintiseis": 26, "veintisiete": 27, "veintiocho": 28,
    "veintinueve": 29,
}  # fmt: skip
TENS = {
    "treinta": 30, "cuarenta": 40, "cincuenta": 50, "sesenta": 60, "setenta": 70,
    "ochenta": 80, "noventa": 90,
}  # fmt: skip
MIN_RUN = 4  # number words in a row before a run is read as digits ("un split" stays)

_WORD = re.compile(r"[a-z]+|[^a-z]+")


def spoken_digits(text: str) -> str:
    """`text` folded, with each run of at least MIN_RUN number words written as digits."""
    tokens = _WORD.findall(fold(text))
    out: list[str] = []
    run: list[str] = []  # number words (and the separators between them)

    def flush() -> None:
        numbers = _read_run([t for t in run if t.isalpha()])
        if numbers is not None:
            trailing = "" if run[-1].isalpha() else " "
            out.append("".join(numbers) + trailing)
        else:
            out.extend(run)
        run.clear()

    for token in tokens:
        if token.isalpha() and (token in UNITS or token in TEENS or token in TENS):
            run.append(token)
        elif run and (token in ("y",) or re.fullmatch(r"[\s,.-]+", token)):
            run.append(token)
        else:
            if run:
                flush()
            out.append(token)
    if run:
        flush()
    return "".join(out)


def _read_run(words: list[str]) -> list[str] | None:
    """Digits for a run of number words; None when it is too short to be a phone."""
    words = [w for w in words if w != "y"]
    if len(words) < MIN_RUN:
        return None
    groups: list[str] = []
    i = 0
    while i < len(words):
        word = words[i]
        if word in TENS:
            value = TENS[word]
            if i + 1 < len(words) and words[i + 1] in UNITS and words[i + 1] != "cero":
                value += UNITS[words[i + 1]]
                i += 1
            groups.append(str(value))
        elif word in TEENS:
            groups.append(str(TEENS[word]))
        else:
            groups.append(str(UNITS[word]))
        i += 1
    return groups
