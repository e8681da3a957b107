"""Pages the language filter must remove: everyday German, French and Spanish prose."""

from __future__ import annotations

import random

from tasks.data.sample_corpus.prose import Prose

# Original sentences written for this fixture (not taken from any corpus).
FOREIGN: dict[str, tuple[str, list[str]]] = {
    "de": (
        "German",
        [
            "Am Samstag fährt der erste Zug schon um halb sechs vom Hauptbahnhof ab.",
            "Meine Nachbarin backt jeden Sonntag einen Apfelkuchen für die ganze Familie.",
            "Im Herbst färben sich die Blätter im Stadtpark gelb und rot.",
            "Die Bibliothek bleibt während der Ferien nur vormittags geöffnet.",
            "Wer mit dem Fahrrad zur Arbeit fährt, spart Geld und bleibt gesund.",
            "Der Wetterbericht kündigt für morgen kräftigen Regen und starken Wind an.",
            "Auf dem Wochenmarkt gibt es frisches Gemüse direkt vom Bauernhof.",
            "Unsere Schule hat in diesem Jahr einen neuen Garten angelegt.",
            "Nach dem Abendessen gehen wir oft noch eine Runde am Fluss spazieren.",
            "Das Museum zeigt eine Ausstellung über die Geschichte der Schifffahrt.",
            "Die Kinder haben im Sommer gelernt, wie man ein Zelt richtig aufbaut.",
            "Im Winter trinken viele Menschen gern einen heißen Tee mit Honig.",
            "Der Bäcker an der Ecke verkauft das beste Brot in der ganzen Straße.",
            "Für die Reise nach Hamburg haben wir die Fahrkarten früh gebucht.",
            "Mein Großvater erzählt gern Geschichten aus seiner Jugend auf dem Land.",
            "Die Stadt plant, im nächsten Frühjahr mehr Bäume an den Straßen zu pflanzen.",
            "Beim Umzug haben uns drei Freunde den ganzen Tag geholfen.",
            "Das Konzert im alten Theater war schon nach wenigen Stunden ausverkauft.",
            "In der Küche riecht es nach frischem Kaffee und warmen Brötchen.",
            "Am Wochenende besuchen wir die Großeltern, die am See wohnen.",
        ],
    ),
    "fr": (
        "French",
        [
            "Le marché du samedi matin attire beaucoup de monde sur la place du village.",
            "Ma sœur apprend à jouer du piano depuis le début de l'automne.",
            "Les trains régionaux sont souvent en retard quand il neige en montagne.",
            "Nous avons préparé une soupe de légumes avec les carottes du jardin.",
            "La bibliothèque municipale organise des lectures pour les enfants chaque mercredi.",
            "Après le travail, mon voisin promène son chien le long du canal.",
            "Le musée de la ville présente une exposition sur les anciens métiers.",
            "Il faut arroser les tomates tous les soirs pendant les semaines chaudes.",
            "Les étudiants se retrouvent à la cafétéria pour réviser ensemble.",
            "Cette boulangerie vend des croissants encore chauds dès six heures.",
            "Pendant les vacances, nous avons visité plusieurs châteaux au bord de la Loire.",
            "Le vent souffle fort sur la côte bretonne depuis trois jours.",
            "Mon grand-père répare lui-même les vieilles horloges de la maison.",
            "La mairie a décidé de construire une nouvelle piste cyclable près de l'école.",
            "Le dimanche, toute la famille se réunit autour d'un long repas.",
            "Les enfants ont construit une cabane en bois au fond du jardin.",
            "On annonce de la pluie pour demain, alors prenez un parapluie.",
            "Le petit cinéma du quartier projette surtout des films anciens.",
            "Elle écrit chaque soir quelques pages dans son carnet de voyage.",
            "Les pêcheurs rentrent au port tôt le matin avec leurs filets pleins.",
        ],
    ),
    "es": (
        "Spanish",
        [
            "Los domingos por la mañana el mercado del barrio se llena de gente.",
            "Mi abuela prepara una tortilla de patatas que nadie puede igualar.",
            "El autobús que va al centro pasa cada quince minutos por esta calle.",
            "En primavera los naranjos del parque llenan el aire de un olor muy dulce.",
            "La biblioteca pública ofrece talleres de lectura para niños y mayores.",
            "Después de cenar solemos dar un paseo tranquilo por la playa.",
            "El museo de la ciudad tiene una colección muy bonita de cerámica antigua.",
            "Este verano hemos aprendido a cultivar tomates y pimientos en el balcón.",
            "Mi hermano trabaja en un taller donde reparan bicicletas viejas.",
            "Cuando llueve mucho, el río que cruza el pueblo sube bastante.",
            "Los estudiantes se reúnen en la plaza para preparar los exámenes.",
            "La panadería de la esquina abre muy temprano y siempre huele a pan recién hecho.",
            "Durante las fiestas del pueblo hay música en la calle hasta muy tarde.",
            "Mi vecino colecciona sellos de todos los países que ha visitado.",
            "El tren de la costa ofrece unas vistas preciosas del mar.",
            "Para la cena de esta noche vamos a preparar una sopa de verduras.",
            "En invierno la sierra se cubre de nieve y muchas familias van a esquiar.",
            "El ayuntamiento quiere plantar más árboles en las avenidas principales.",
            "Mis amigos y yo jugamos al fútbol en el parque todos los sábados.",
            "La profesora nos recomendó leer una novela corta cada mes.",
        ],
    ),
}
_TITLES = {
    "de": ["Neuigkeiten aus der Nachbarschaft", "Unser Alltag in der Stadt", "Notizen vom Wochenende"],
    "fr": ["Nouvelles du quartier", "La vie de tous les jours", "Carnet du week-end"],
    "es": ["Noticias del barrio", "La vida en la ciudad", "Notas del fin de semana"],
}


def foreign_page(lang: str, rng: random.Random, used: set[str]) -> Prose:
    """A page of 12-16 sentences in `lang`, no paragraph of which is in `used` (it is added)."""
    _, pool = FOREIGN[lang]
    for _attempt in range(100):
        sentences = rng.sample(pool, k=min(len(pool), rng.randint(12, 16)))
        paragraphs, pos = [], 0
        while pos < len(sentences):
            size = rng.randint(3, 4)
            paragraphs.append(" ".join(sentences[pos : pos + size]))
            pos += size
        if not used & set(paragraphs):  # each paragraph string once in the corpus
            used.update(paragraphs)
            return Prose(rng.choice(_TITLES[lang]), paragraphs)
    raise RuntimeError(f"cannot compose a new {lang} page")

