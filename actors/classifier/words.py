"""Words that tell a name from everything else a person may answer to "¿Cómo te llamas?".

A name is not a question, a greeting, a courtesy, a verb or a filler: those words are listed
here. First names common in Chile ship as data (`data/nombres_cl.txt`); a short answer whose
first word is one of them is read as a name, and an unknown word only when nothing else in
the answer says it is something else."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from supervisor.business import fold

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
