"""Chilean comunas and cities the extractor knows besides the business's own coverage, so
that "vivo en Puente Alto" is recorded (and seen to be outside coverage) even when the
business lists only its own comunas."""

from __future__ import annotations

METROPOLITANA = (
    "Alhué, Buin, Calera de Tango, Cerrillos, Cerro Navia, Conchalí, Curacaví,"
    " El Bosque, El Monte, Estación Central, Huechuraba, Independencia, Isla de Maipo,"
    " La Cisterna, La Florida, La Granja, La Pintana, La Reina, Lampa, Las Condes,"
    " Lo Barnechea, Lo Espejo, Lo Prado, Macul, Maipú, María Pinto, Melipilla, Ñuñoa,"
    " Padre Hurtado, Paine, Pedro Aguirre Cerda, Peñaflor, Peñalolén, Pirque, Providencia,"
    " Pudahuel, Puente Alto, Quilicura, Quinta Normal, Recoleta, Renca, San Bernardo,"
    " San Joaquín, San José de Maipo, San Miguel, San Ramón, Santiago, Talagante,"
    " Tiltil, Vitacura"
)
CITIES = (
    "Arica, Iquique, Alto Hospicio, Antofagasta, Calama, Copiapó, La Serena, Coquimbo,"
    " Ovalle, Valparaíso, Viña del Mar, Quilpué, Villa Alemana, Concón, Quillota, San Antonio,"
    " Los Andes, Rancagua, Machalí, San Fernando, Curicó, Talca, Chillán,"
    " Concepción, Talcahuano, San Pedro de la Paz, Chiguayante, Los Ángeles,"
    " Temuco, Padre Las Casas, Valdivia, Osorno, Puerto Montt, Puerto Varas,"
    " Coyhaique, Punta Arenas"
)

KNOWN_PLACES: tuple[str, ...] = tuple(
    name.strip() for name in f"{METROPOLITANA},{CITIES}".split(",") if name.strip()
)
