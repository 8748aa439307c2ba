"""Spanish conversation snippets: what the classifier extracts and how it classifies.

Each row goes through the real store and classifier. Fields not named in a row must come
out empty, so a row also catches what should NOT be extracted (traps such as "playa",
"ya veremos", a RUT, "soy de Maipú")."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from .harness import WA_ID, Desk

ASK_NAME = "¡Perfecto! ¿Cómo te llamas?"
ASK_AREA = "Gracias. ¿En qué comuna estás?"
ASK_PHONE = "¿A qué número de teléfono te podemos contactar?"
ASK_WHEN = "¿Para cuándo lo necesitas?"
INSTALL = "Instalación de aire acondicionado"
MAINTAIN = "Mantención preventiva"
REPAIR = "Reparación y diagnóstico"
HEAT = "Bomba de calor y calefacción"

# (id, channel, [(question or None, user text)], expected fields, class)
SNIPPETS: list[tuple[str, str, list[tuple[str | None, str]], dict[str, Any], str]] = [
    ("saludo", "web", [(None, "Hola")], {}, "frio"),
    ("saludo-largo", "web", [(None, "Hola, buenas tardes")], {}, "frio"),
    ("trampa-playa", "web", [(None, "Me voy a la playa, después te escribo")], {}, "frio"),
    ("trampa-ya", "web", [(None, "ya")], {}, "frio"),
    ("ya-veremos", "web", [(None, "ya veremos")], {"urgency": "sin apuro"}, "frio"),
    ("trampa-hoyo", "web", [(None, "hay un hoyo en la pared")], {}, "frio"),
    (
        "servicio",
        "web",
        [(None, "Necesito instalar un aire acondicionado")],
        {"service": INSTALL},
        "tibio",
    ),
    (
        "agendar",
        "web",
        [(None, "quiero agendar una visita para mantención")],
        {"service": MAINTAIN},
        "caliente",
    ),
    (
        "urgente-no-funciona",
        "web",
        [(None, "mi aire no funciona, es urgente")],
        {"service": REPAIR, "urgency": "urgente"},
        "caliente",
    ),
    ("negacion", "web", [(None, "no es urgente, cuando puedan")], {}, "frio"),
    ("para-hoy", "web", [(None, "lo necesito para hoy")], {"urgency": "hoy"}, "caliente"),
    (
        "nombre-y-fono",
        "web",
        [(None, "Me llamo Juan Pérez y mi número es +56 9 8765 4321")],
        {"name": "Juan Pérez", "phone": "+56987654321"},
        "tibio",
    ),
    ("soy-de", "web", [(None, "Soy de Maipú")], {"area": "Maipú"}, "frio"),
    (
        "soy-el-dueno",
        "web",
        [(None, "soy el dueño de una oficina en Providencia")],
        {"area": "Providencia"},
        "frio",
    ),
    (
        "nombre-comuna-servicio",
        "web",
        [(None, "soy María, vivo en Ñuñoa y necesito mantención de mi aire")],
        {"name": "María", "area": "Ñuñoa", "service": MAINTAIN},
        "tibio",
    ),
    (
        "contacto-y-servicio",
        "web",
        [(None, "Me llamo Pedro, mi fono es 912345678, necesito instalar un split")],
        {"name": "Pedro", "phone": "+56912345678", "service": INSTALL},
        "caliente",
    ),
    ("precio", "web", [(None, "¿Cuánto cuesta la instalación?")], {"service": INSTALL}, "tibio"),
    (
        "contacto-y-precio",
        "web",
        [(None, "Me llamo Ana, 987654321, ¿cuál es el precio?")],
        {"name": "Ana", "phone": "+56987654321"},
        "caliente",
    ),
    (
        "cotizar",
        "web",
        [(None, "necesito cotizar una bomba de calor")],
        {"service": HEAT},
        "caliente",
    ),
    (
        "contratar",
        "web",
        [(None, "quiero contratar la instalación")],
        {"service": INSTALL},
        "caliente",
    ),
    (
        "email",
        "web",
        [(None, "mi correo es Ana.Perez@Gmail.com")],
        {"email": "Ana.Perez@gmail.com"},
        "tibio",
    ),
    ("email-malo", "web", [(None, "escríbeme a ana@@gmail")], {}, "frio"),
    (
        "informacion",
        "web",
        [(None, "Quiero información sobre mantención")],
        {"service": MAINTAIN},
        "tibio",
    ),
    ("comuna", "web", [(None, "estoy en Las Condes")], {"area": "Las Condes"}, "frio"),
    ("comuna-fuera", "web", [(None, "estoy en Puente Alto")], {"area": "Puente Alto"}, "frio"),
    ("comuna-typo", "web", [(None, "vivo en providensia")], {"area": "Providencia"}, "frio"),
    (
        "servicio-typo",
        "web",
        [(None, "necesito reparar mi aire acondisionado")],
        {"service": REPAIR},
        "tibio",
    ),
    ("servicio-typo-2", "web", [(None, "instalasion de aire")], {"service": INSTALL}, "tibio"),
    (
        "presupuesto-mil",
        "web",
        [(None, "mi presupuesto es de 300 mil")],
        {"budget": "$300.000"},
        "tibio",
    ),
    ("presupuesto-pesos", "web", [(None, "tengo hasta $500.000")], {"budget": "$500.000"}, "tibio"),
    (
        "fono-espana",
        "web",
        [(None, "Hola, me llamo Carlos Soto. Mi teléfono: +34 612 345 678")],
        {"name": "Carlos Soto", "phone": "+34612345678"},
        "tibio",
    ),
    (
        "fono-eeuu",
        "web",
        [(None, "call me at +1 (415) 555-2671")],
        {"phone": "+14155552671"},
        "tibio",
    ),
    ("fono-fijo", "web", [(None, "llámenme al 22 345 6789")], {"phone": "+56223456789"}, "tibio"),
    ("trampa-rut", "web", [(None, "mi rut es 12.345.678-9")], {}, "frio"),
    ("trampa-btu", "web", [(None, "tengo 3 equipos de 12000 BTU")], {}, "frio"),
    ("nombre-mayusculas", "web", [(None, "ME LLAMO JOSÉ MUÑOZ")], {"name": "José Muñoz"}, "tibio"),
    ("pregunta-nombre", "web", [(ASK_NAME, "Rosa")], {"name": "Rosa"}, "tibio"),
    ("pregunta-comuna", "web", [(ASK_AREA, "Peñalolén")], {"area": "Peñalolén"}, "frio"),
    ("pregunta-fono", "web", [(ASK_PHONE, "9 8765 4321")], {"phone": "+56987654321"}, "tibio"),
    ("pregunta-plazo", "web", [(ASK_WHEN, "el jueves")], {"urgency": "el jueves"}, "frio"),
    (
        "todo-junto",
        "web",
        [
            (
                None,
                "Necesito mantención urgente, mi nombre es Luis Rojas, fono 22 345 6789,"
                " en La Florida",
            )
        ],
        {
            "name": "Luis Rojas",
            "phone": "+56223456789",
            "service": MAINTAIN,
            "area": "La Florida",
            "urgency": "urgente",
        },
        "caliente",
    ),
    (
        "emergencia",
        "web",
        [(None, "emergencia!!! se echó a perder el aire")],
        {"urgency": "urgente"},
        "caliente",
    ),
    (
        "sin-apuro",
        "web",
        [(None, "para la próxima semana, sin apuro")],
        {"urgency": "próxima semana"},
        "frio",
    ),
    (
        "consulta-completa",
        "web",
        [
            (
                None,
                "Buenos días, ¿hacen mantención de equipos en Macul? Mi nombre es Sofía y mi "
                "correo sofia@empresa.cl",
            )
        ],
        {"name": "Sofía", "email": "sofia@empresa.cl", "service": MAINTAIN, "area": "Macul"},
        "tibio",
    ),
    (
        "emoji-y-guiones",
        "web",
        [
            (
                None,
                "Hola!! 😀 necesito instalar 2 splits, me llamo Tomás, 9-8765-4321, "
                "lo antes posible",
            )
        ],
        {"name": "Tomás", "phone": "+56987654321", "service": INSTALL, "urgency": "urgente"},
        "caliente",
    ),
    ("manana", "web", [(None, "mañana en la mañana")], {"urgency": "mañana"}, "frio"),
    (
        "varios-turnos",
        "web",
        [
            (None, "hola, ¿hacen reparaciones?"),
            (ASK_NAME, "Camila Reyes"),
            (ASK_PHONE, "+56 9 8765 4321"),
        ],
        {"name": "Camila Reyes", "phone": "+56987654321", "service": REPAIR},
        "caliente",
    ),
    ("whatsapp-saludo", "whatsapp", [(None, "hola")], {"phone": "+" + WA_ID}, "frio"),
    (
        "whatsapp-nombre-servicio",
        "whatsapp",
        [(None, "Hola, soy Marta y necesito una mantención")],
        {"name": "Marta", "phone": "+" + WA_ID, "service": MAINTAIN},
        "caliente",
    ),
]

FIELDS = ("name", "phone", "email", "service", "area", "urgency", "budget")


@pytest.mark.parametrize(
    ("channel", "turns", "expected", "klass"),
    [pytest.param(*row[1:], id=row[0]) for row in SNIPPETS],
)
def test_snippet(
    tmp_path: Path,
    channel: str,
    turns: list[tuple[str | None, str]],
    expected: dict[str, Any],
    klass: str,
) -> None:
    desk = Desk.open(tmp_path)
    key = WA_ID if channel == "whatsapp" else "s"
    lead = None
    for question, text in turns:
        if question:
            desk.asked(question, channel=channel, key=key)
        lead = desk.say(text, channel=channel, key=key, answer="Gracias.")
    assert lead is not None
    got = {**lead.fields.__dict__, "budget": lead.budget}
    assert {f: got[f] for f in FIELDS} == {f: expected.get(f) for f in FIELDS}
    assert lead.classification == klass, lead.reasons


def test_there_are_at_least_forty_snippets() -> None:
    assert len(SNIPPETS) >= 40
    assert len({row[0] for row in SNIPPETS}) == len(SNIPPETS)


def test_reasons_name_what_a_salesperson_would(tmp_path: Path) -> None:
    desk = Desk.open(tmp_path)
    lead = desk.say("Hola, me llamo Inés, mi fono 987654321, quiero agendar para hoy")
    assert lead is not None and lead.classification == "caliente"
    assert {"pidió agendar", "dio su teléfono", "dio su nombre", "urgencia: hoy"} <= set(
        lead.reasons
    )
    assert 0 < lead.score <= 100


def test_a_lead_never_cools_down_and_keeps_its_history(tmp_path: Path) -> None:
    desk = Desk.open(tmp_path)
    desk.say("Hola")
    desk.say("necesito instalar un aire")
    hot = desk.say("quiero agendar")
    calm = desk.say("bueno, ya veremos")
    assert hot is not None and calm is not None
    assert calm.classification == "caliente"
    from store import leads

    assert [h[0] for h in leads.history(desk.db, calm.id)] == ["frio", "tibio", "caliente"]
