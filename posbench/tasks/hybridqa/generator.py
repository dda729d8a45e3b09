"""Synthetic HybridQA-style questions that need a table row *and* a linked passage, at any context length.

A table lists members of a society (name, country, year joined, field); every name links to a short biography.
Answering needs a join:
  * passage answers: a table condition (two columns) picks the row, the answer (birth city, university or birth year)
    is only in that person's biography;
  * table answers: the biography names the person (by birth city and university), the answer is in the table.
The number of rows is the size knob: a binary search fills the token budget. The target row's relative position and
the question are drawn first, so they do not depend on the length. Rendering reuses the loader's `linearise`, so
the prompt has the same shape as the real HybridQA task.
"""
import random

from posbench.tasks.errors import TaskError
from posbench.tasks.hybridqa.loader import linearise
from posbench.tasks.registry import register_generator
from posbench.tasks.schema import SampleDraft

FIRST = ("Ada Amir Anja Bruno Carla Dario Elena Emil Farah Felix Greta Hugo Ines Ivan Jana Jonas Kai Karin Leon Lina "
         "Marco Maya Nils Nora Omar Olga Pablo Paula Quinn Rosa Ruben Sara Stefan Tara Tomas Una Vera Viktor Wanda "
         "Yusuf Zoe Arjun Bianca Chen Dmitri Esther Goran Hana Ilya").split()
LAST = ("Abbott Baranov Castillo Dahl Eriksen Ferreira Gallo Haddad Ivanova Jensen Kowalski Lindqvist Moreau Novak "
        "Okafor Petrov Quintero Rossi Sandoval Tanaka Ueda Varga Weber Xu Yilmaz Zeller Albers Brandt Coelho Duarte "
        "Engel Fischer Grieve Holm Ibarra Janssen Kato Lund Mendes Nakamura").split()
COUNTRIES = ("Austria Brazil Canada Chile Denmark Egypt Finland Ghana Greece India Ireland Japan Kenya Mexico Norway "
             "Peru Poland Portugal Spain Sweden Turkey Vietnam").split()
FIELDS = ("Astronomy Botany Chemistry Economics Geology History Linguistics Mathematics Medicine Music Philosophy "
          "Physics Poetry Sculpture Zoology").split()
CITIES = ("Aarhus Bergen Bilbao Bremen Brno Cork Cusco Durban Fukuoka Ghent Graz Izmir Kazan Kraków Kyoto Leeds Lille "
          "Lyon Malmö Mombasa Nantes Oporto Oulu Patras Perth Pune Quito Recife Salta Tartu Toledo Turin Utrecht "
          "Valencia Varna Zadar").split()
UNIVERSITIES = [f"University of {c}" for c in ("Arden", "Belmont", "Carrow", "Dunmore", "Elsworth", "Fairhaven",
                                               "Glenrock", "Harwick", "Ivybridge", "Kestrel", "Lorimer", "Marston",
                                               "Northfield", "Oakhurst", "Pembury", "Ravenna", "Stanmore", "Thornbury")]
MONTHS = "January February March April May June July August September October November December".split()
KINDS = ("birth_city", "university", "birth_year", "year_from_bio", "field_from_bio")


def _people(rng, n):
    names = rng.sample([f"{first} {last}" for first in FIRST for last in LAST], n)
    return [{"name": name, "country": rng.choice(COUNTRIES), "year": rng.randint(1950, 2023),
             "field": rng.choice(FIELDS), "birth_city": rng.choice(CITIES), "university": rng.choice(UNIVERSITIES),
             "born": (rng.randint(1, 28), rng.choice(MONTHS), rng.randint(1900, 2000)),
             "pronoun": rng.choice(("He", "She"))} for name in names]


def _bio(p):
    """Birth date and city and the university appear only here; the table columns are not repeated (no shortcut)."""
    day, month, year = p["born"]
    return (f"{p['name']} ( born {day} {month} {year} in {p['birth_city']} ) is a scholar and a member of the "
            f"society . {p['pronoun']} studied at the {p['university']} .")


def _single_out(rng, people, target, keys):
    """Make `target` the only person matching it on `keys`: others that match are redrawn on the last key."""
    key = keys[-1]
    draw = {"country": lambda: rng.choice(COUNTRIES), "year": lambda: rng.randint(1950, 2023),
            "field": lambda: rng.choice(FIELDS), "birth_city": lambda: rng.choice(CITIES),
            "university": lambda: rng.choice(UNIVERSITIES)}[key]
    for p in people:
        while p is not target and all(p[k] == target[k] for k in keys):
            p[key] = draw()


def _question(rng, people, target, kind):
    if kind in ("year_from_bio", "field_from_bio"):        # passage -> table
        _single_out(rng, people, target, ("birth_city", "university"))
        who = f"the member who was born in {target['birth_city']} and studied at the {target['university']}"
        if kind == "year_from_bio":
            return f"In which year did {who} join the society ?", str(target["year"])
        return f"In which field is {who} a member of the society ?", target["field"]
    keys = rng.choice([("country", "year"), ("field", "year"), ("country", "field")])   # table -> passage
    _single_out(rng, people, target, keys)
    cond = {"country": f"from {target['country']}", "year": f"who joined in {target['year']}",
            "field": f"in {target['field'].lower()}"}
    who = f"the member {cond[keys[0]]} {cond[keys[1]]}"
    if kind == "birth_city":
        return f"In which city was {who} born ?", target["birth_city"]
    if kind == "university":
        return f"Which university did {who} attend ?", target["university"]
    return f"In which year was {who} born ?", str(target["born"][2])


def build(seed, n, position, kind):
    """(fields, answer, metadata) for an n-row table."""
    rng = random.Random(seed)
    people = _people(rng, n)
    target = people[min(int(position * n), n - 1)]
    question, answer = _question(rng, people, target, kind)
    link = {p["name"]: "/wiki/" + p["name"].replace(" ", "_") for p in people}
    table = {"title": f"List of members of the {rng.choice(LAST)} Society", "section_title": "Members",
             "header": [[h, []] for h in ("Name", "Country", "Year joined", "Field")],
             "data": [[[p["name"], [link[p["name"]]]], [p["country"], []], [str(p["year"]), []], [p["field"], []]]
                      for p in people]}
    bios = [(link[p["name"]], _bio(p)) for p in people]
    rng.shuffle(bios)                                       # passages do not follow the table order
    meta = {"rows": n, "target_row": people.index(target), "question_kind": kind,
            "answer_source": "table" if kind.endswith("from_bio") else "passage"}
    return {"question": question, "context": linearise(table, dict(bios), link_order=False)}, answer, meta


@register_generator("hybridqa_gen")
def hybridqa_gen(ctx, *, kinds: list = KINDS):
    bad = [k for k in kinds if k not in KINDS]
    if bad or not kinds:
        raise TaskError(f"hybridqa_gen: unknown question kinds {bad}; known: {', '.join(KINDS)}")
    if ctx.budget is None:
        raise TaskError(f"task {ctx.task}: hybridqa_gen fills a context length; give one")
    seed, position, kind = ctx.rng.getrandbits(64), ctx.rng.random(), ctx.rng.choice(list(kinds))

    def fitting(n):
        built = build(seed, n, position, kind)
        return built if ctx.count_tokens(ctx.render(built[0])) <= ctx.budget else None

    best, n = None, 2
    while n <= len(FIRST) * len(LAST) and (built := fitting(n)) is not None:
        best, n = built, n * 2
    if best is None:
        raise TaskError(f"task {ctx.task}: a budget of {ctx.budget} tokens is too small for a table question")
    lo, hi = best[2]["rows"], min(n, len(FIRST) * len(LAST) + 1)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if (built := fitting(mid)) is not None:
            best, lo = built, mid
        else:
            hi = mid
    fields, answer, meta = best
    return SampleDraft(fields=fields, answers=[answer], metadata=meta)
