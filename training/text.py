"""English sentences for the synthetic voices: a seeded grammar with a wide vocabulary.

``sentences(n, seed)`` returns ``n`` distinct sentences, always the same for the same arguments.
Splits take disjoint index ranges of that list, so no text is shared across splits.
"""

from __future__ import annotations

import random

PEOPLE = """my neighbour|the old fisherman|a tired nurse|the new teacher|our grandmother|the young
pilot|a quiet student|the baker|her cousin|the mayor|a street musician|the night guard|his brother
|the captain|a curious child|the farmer|my best friend|the engineer|a famous painter|the librarian
|the taxi driver|our landlord|the doctor|a stranger|the chef|the shop owner|the gardener|a lawyer
|the referee|my aunt|the postman|the carpenter|an astronaut|the coach|a journalist|the plumber
|the twins|the drummer|a tourist|the firefighter""".replace("\n", " ").split("|")

THINGS = """the red bicycle|a bowl of soup|the broken window|an old map|the heavy suitcase|a paper
kite|the wooden bridge|the silver key|a basket of apples|the kitchen table|a wool blanket|the yellow
umbrella|the garden hose|a pair of boots|the morning paper|a cup of coffee|the blue notebook|the
radio|a loaf of bread|the piano|a box of nails|the washing machine|the front door|a bag of rice|the
telescope|an envelope|the ladder|a jar of honey|the lamp|the fishing boat|a glass of water|the
camera|a bunch of flowers|the laptop|a roll of tape|the clock on the wall|the letter|a bottle of
milk|the candle|the tent""".replace("\n", " ").split("|")

PLACES = """in the kitchen|by the river|at the station|on the roof|near the old church|in the
garden|at the market|behind the school|under the bridge|in the library|on the beach|at the
airport|in the forest|near the harbour|in the village square|on the train|at the hospital|in the
basement|on the hill|at the corner shop|in the car park|by the lake|in the museum|at the
stadium|in the office|on the balcony|in the hallway|at the bakery|on the island|near the
farm""".replace("\n", " ").split("|")

TIMES = """this morning|last night|every Sunday|after lunch|before dawn|on Friday|in the spring|at
midnight|during the storm|yesterday afternoon|next week|at half past seven|once a month|in
winter|early today|late in the evening|on her birthday|after the match|before the holidays|at
noon""".replace("\n", " ").split("|")

VERBS_T = """carried|painted|repaired|found|dropped|opened|cleaned|sold|borrowed|lost|moved|bought|
packed|measured|counted|hid|wrapped|checked|carved|lifted|returned|polished|washed|shared|
photographed|weighed|delivered|collected|fixed|stole""".replace("\n", "").split("|")

VERBS_I = """laughed|waited|slept|sang quietly|ran home|shouted|danced|whispered|listened|
complained|walked slowly|worked late|stayed calm|cried|smiled|hurried away|sat down|spoke
softly|looked around|stood still""".replace("\n", "").split("|")

ADJ = """bright|cold|noisy|empty|crowded|quiet|dusty|warm|narrow|strange|beautiful|dark|wet|
tiny|enormous|ancient|modern|friendly|busy|peaceful|muddy|sunny|windy|gloomy|cheerful""".replace(
    "\n", ""
).split("|")

NOUNS_PLACE = """room|street|morning|kitchen|office|harbour|valley|platform|market|classroom|
garden|evening|road|field|corridor|village|forest|beach|station|square""".replace("\n", "").split(
    "|"
)

REASONS = """because it was raining|since nobody else could|although it was late|because the
shop was closed|while the others were sleeping|before anyone noticed|as the sun went down|so that
the children could play|because the road was blocked|after the lights went out|although the
weather was bad|while the kettle was boiling|because the bus was late|until the rain
stopped|when the bell rang""".replace("\n", " ").split("|")

QUESTIONS = """Did {p} really leave {t} {pl}?|Why did {p} bring {t} {tm}?|Who {vt} {t} {pl}?|
Where did {p} put {t}?|Have you seen {t} {pl}?|Could {p} carry {t} {tm}?|Is it true that {p}
{vi} {tm}?|How long did {p} wait {pl}?|When will {p} return {t}?|What did {p} say about
{t}?""".replace("\n", " ").split("|")

TEMPLATES = [
    "{P} {vt} {t} {pl} {tm}.",
    "{Tm}, {p} {vt} {t} {rs}.",
    "{P} {vi} {pl} {rs}.",
    "The {a} {np} was full of people {tm}.",
    "{P} said that {p2} {vt} {t} {pl}.",
    "It was a {a} {np}, and {p} {vi}.",
    "{P} {vt} {t}, then {p2} {vt2} {t2}.",
    "We met {p} {pl} {tm}, and everyone {vi}.",
    "{P} never {vt} {t} {rs}.",
    "Please put {t} {pl} before {p} comes back.",
    "After {p} {vt} {t}, the {np} felt {a}.",
    "{P} and {p2} {vi} {pl} {tm}.",
    "There were {n} {np}s near {p}'s house, all of them {a}.",
    "I think {p} {vt} {t} {tm}, but I am not sure.",
    "{P} was {a} {rs}.",
    "Yesterday {p} counted {n} boats {pl}.",
    "{Q}",
]

NUMBERS = """two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|fifteen|twenty|thirty|
forty""".replace("\n", "").split("|")


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def _one(rng: random.Random) -> str:
    p, p2 = rng.sample(PEOPLE, 2)
    t, t2 = rng.sample(THINGS, 2)
    fields = {
        "p": p.strip(),
        "p2": p2.strip(),
        "t": t.strip(),
        "t2": t2.strip(),
        "pl": rng.choice(PLACES).strip(),
        "tm": rng.choice(TIMES).strip(),
        "vt": rng.choice(VERBS_T).strip(),
        "vt2": rng.choice(VERBS_T).strip(),
        "vi": rng.choice(VERBS_I).strip(),
        "a": rng.choice(ADJ).strip(),
        "np": rng.choice(NOUNS_PLACE).strip(),
        "rs": rng.choice(REASONS).strip(),
        "n": rng.choice(NUMBERS).strip(),
    }
    template = rng.choice(TEMPLATES)
    if template == "{Q}":
        template = rng.choice(QUESTIONS).strip()
    fields["P"] = _cap(fields["p"])
    fields["Tm"] = _cap(fields["tm"])
    return " ".join(template.format(**fields).split())


def sentences(n: int, seed: int = 0) -> list[str]:
    """``n`` distinct sentences (deterministic for a given seed)."""
    rng = random.Random(seed)
    out: list[str] = []
    seen: set[str] = set()
    tries = 0
    while len(out) < n:
        s = _one(rng)
        tries += 1
        if s not in seen:
            seen.add(s)
            out.append(s)
        if tries > 50 * n:
            raise RuntimeError(f"grammar cannot produce {n} distinct sentences")
    return out
