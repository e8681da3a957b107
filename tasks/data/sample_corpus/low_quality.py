"""Low-quality English pages: what the Gopher repetition and quality filters must remove."""

from __future__ import annotations

import random

from tasks.data.sample_corpus.prose import Prose, sentences_of

_SPAM_TOPICS = [
    ("cheap flights to Lisbon", "Book your"),
    ("best garden furniture deals", "Shop the"),
    ("discount running shoes online", "Order"),
    ("free phone case with every order", "Claim a"),
    ("cheap car insurance quotes", "Compare"),
    ("luxury watches at outlet prices", "Buy"),
    ("last minute hotel rooms in Prague", "Reserve"),
    ("wholesale coffee beans", "Get"),
    ("fast payday loans today", "Apply for"),
    ("organic dog food delivery", "Try"),
    ("used laptops with warranty", "Find"),
    ("bamboo bed sheets on sale", "See the"),
]

# Notices of 30-40 words: under the Gopher minimum of 50, but long enough in characters
# that no single n-gram covers a large share of the text (datatrove's top-n-gram rule
# counts the most frequent n-gram even when it occurs once, which trips tiny texts).
_SHORT_NOTICES = [
    "The north reading room will be closed on Monday for maintenance. Please use the south entrance "
    "until the work is finished. Borrowed books can still be returned through the letterbox beside the main door.",
    "Our office moves to the second floor next week. Telephone numbers stay the same, and the post room "
    "opens as usual. Visitors should report to reception, where someone will accompany them upstairs.",
    "The swimming pool opens an hour later on Friday because of a school competition. Evening sessions "
    "are not affected. Members who booked early lanes will receive an email offering another time slot.",
    "Registration for the spring pottery course ends on Thursday. A few places are still free in the "
    "evening group. Beginners are welcome, and clay, tools and aprons are provided by the studio.",
    "The bridge on Mill Road is closed to cars until the end of the month. Cyclists and walkers can still "
    "cross it. Delivery vans should follow the yellow diversion signs through Station Street.",
    "This week the farm shop sells fresh strawberries and early potatoes. Come early because they sell out "
    "quickly. Customers may bring their own baskets, which helps us reduce packaging waste.",
    "Choir rehearsal moves from Tuesday to Wednesday this week. We meet at seven in the church hall as "
    "usual. Please bring the new sheet music that was handed out during the last meeting.",
    "The museum cafe is closed today for a private event. Visitors can find drinks and snacks in the garden "
    "kiosk. Galleries, shop and cloakroom remain open during normal hours.",
    "Bus line twelve takes a short detour through Station Street while roadworks last. All other stops "
    "stay the same. Expect delays of around ten minutes during the morning rush hour.",
    "The library will accept donated books again from next month. Please bring them to the front desk in "
    "boxes. Damaged volumes, magazines and old encyclopedias cannot be accepted.",
]

_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December")

_HASHTAGS = [
    "#gardening", "#weekend", "#diy", "#family", "#homegrown", "#summer", "#sunshine", "#nofilter", "#bakingday",
    "#coffeetime", "#travelgram", "#hiking", "#mountains", "#beachlife", "#foodie", "#instagood", "#photooftheday",
    "#love", "#happy", "#motivation", "#fitness", "#runner", "#booklover", "#reading", "#cozy", "#autumnvibes",
    "#springtime", "#citylife", "#streetphotography", "#dogsofinstagram", "#catlover", "#vegan", "#healthyfood",
    "#musiclover", "#roadtrip", "#adventure", "#sunset", "#friends", "#goodvibes", "#blessed",
]
_POST_SENTENCES = [
    "Spent the whole weekend fixing the old fence behind the garden with the kids.",
    "We finally tried the new bakery near the station and the bread was worth the queue.",
    "Morning run along the river before work, the light was just beautiful today.",
    "Finished my third book this month and I already want to read it again.",
    "The tomatoes are growing faster than we can eat them, so expect some jars of sauce soon.",
    "A long walk in the hills with friends, a picnic on the top and rain on the way back.",
    "Our dog met the neighbours' new puppy and they played for an hour in the yard.",
    "Tried a new recipe for lentil soup tonight and everyone asked for a second bowl.",
    "The road trip took longer than planned but the views along the coast were amazing.",
    "First swim of the year in the lake and the water was colder than it looked.",
    "Rearranged the whole living room on a rainy Sunday and it feels like a new flat.",
    "Caught the last concert of the summer festival with my sister and her friends.",
]
_TEASERS = [
    "Ten ways to keep your garden green through the dry summer months",
    "What the new parking rules mean for people who live in the old town",
    "Local bakery wins a prize for the best rye bread in the region",
    "Why so many families are moving from the city to the small villages",
    "The surprising history of the lighthouse on the northern cliffs",
    "Five easy dinners you can cook in less than twenty minutes",
    "How the football club plans to rebuild its stadium next year",
    "A retired teacher walks the whole coast path for a good cause",
    "New cycle lanes divide opinion among shop owners and residents",
    "The best places to watch the autumn birds from the marshes",
    "Our reporter spends one night with the harbour rescue team",
    "Why the price of apples changed so much at the farmers market",
    "Three young musicians open a small studio in the former post office",
    "How to choose a good winter coat without spending too much money",
]


def spam_page(rng: random.Random, index: int) -> tuple[Prose, str]:
    """Keyword stuffing or one line repeated: for the Gopher repetition filter. (prose, note)"""
    phrase, verb = rng.choice(_SPAM_TOPICS)
    if index % 2 == 0:
        # One paragraph of keyword stuffing: the top n-grams dominate the text.
        times = rng.randint(25, 35)
        stuffed = " ".join(f"{phrase.capitalize()}, {verb.lower()} {phrase} now." for _ in range(times))
        intro = f"{verb} {phrase} here and save more than anywhere else this season."
        return Prose(phrase.title(), [intro, stuffed]), f"keyword stuffing: '{phrase}' x{times} in one paragraph"
    # Many identical short lines: under trafilatura's 100-character duplicate check,
    # so they survive extraction and show up as duplicated lines.
    line = f"{verb} {phrase} today, limited offer!"
    times = rng.randint(15, 22)
    return Prose(phrase.title(), [line] * times + [f"Questions about {phrase}? Our team answers every day."]), (
        f"the same line repeated x{times}"
    )


def low_quality_page(rng: random.Random, index: int) -> tuple[Prose, str]:
    """Too short, symbol-heavy or all teasers: for the Gopher quality filter. (prose, note)"""
    kind = index % 3
    if kind == 0:
        notice = rng.choice(_SHORT_NOTICES)
        posted = f"Posted on {rng.randint(1, 28)} {rng.choice(_MONTHS)}."
        # Several paragraphs: trafilatura's precision mode discards a lone short paragraph
        # on some layouts, and this page must reach the quality filter.
        paragraphs = [*sentences_of(notice), posted]
        return Prose("Notice", paragraphs), f"too short: {sum(len(p.split()) for p in paragraphs) + 1} words"
    if kind == 1:
        sentences = rng.sample(_POST_SENTENCES, k=5)
        tags = rng.sample(_HASHTAGS, k=len(_HASHTAGS))
        paragraphs = [f"{s} {' '.join(tags[i * 4 : i * 4 + 4])}" for i, s in enumerate(sentences)]
        words = sum(len(p.split()) for p in paragraphs)
        return Prose("My week in pictures", paragraphs), f"symbol-heavy: 20 hashtags in {words} words"
    teasers = rng.sample(_TEASERS, k=9)
    return Prose("More stories", [f"{t}..." for t in teasers]), "every line is a teaser ending in '...'"

