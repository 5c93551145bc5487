"""The medication vocabulary and its matcher (orders/medications.py): a table per rule.

Given a medication or allergy list as a clinic types it, when it is read for one group, then
exactly these drugs are found, each with the entry as it was written.
"""

import re

import pytest

from orders.medications import SOURCES, VOCABULARY, Drug, Group, Mention, mentions

OPIOID = Group.OPIOID
PERIPHERAL = Group.PERIPHERAL_OPIOID
IMMUNOSUPPRESSANT = Group.IMMUNOSUPPRESSANT
THYROID = Group.THYROID_REPLACEMENT
ANTAGONIST = Group.OPIOID_ANTAGONIST


def found(text: str, group: Group = OPIOID) -> list[tuple[str, str]]:
    """(drug name, entry as written) of each mention, in order."""
    return [(mention.drug.name, mention.written) for mention in mentions(text, group)]


def drug_named(name: str) -> Drug:
    (drug,) = [drug for drug in VOCABULARY if drug.name == name]
    return drug


# The vocabulary as data ---------------------------------------------------------------------


def test_every_group_has_a_source():
    assert set(SOURCES) == set(Group)
    assert all(len(source) > 40 for source in SOURCES.values())
    assert "naltrexone" in SOURCES[OPIOID].casefold()


def test_drugs_and_names_per_group():
    counts = {
        group: (
            sum(drug.group == group for drug in VOCABULARY),
            sum(len(drug.names) for drug in VOCABULARY if drug.group == group),
        )
        for group in Group
    }
    assert counts == {
        OPIOID: (33, 257),
        PERIPHERAL: (2, 8),
        IMMUNOSUPPRESSANT: (46, 181),
        THYROID: (4, 36),
        ANTAGONIST: (2, 17),
    }


@pytest.mark.parametrize("drug", VOCABULARY, ids=lambda drug: drug.name)
def test_each_drug_is_well_formed(drug):
    assert drug.name == drug.name.strip().lower()
    assert drug.drug_class.strip()
    assert drug.names
    assert len({name.casefold() for name in drug.names}) == len(drug.names)  # no repeats


def test_drugs_also_used_on_the_skin_in_the_eye_or_inhaled_are_systemic_only():
    assert {drug.name for drug in VOCABULARY if drug.systemic_only} == {
        "tacrolimus",
        "cyclosporine",
        "sirolimus",
        "ruxolitinib",
        "prednisolone",
        "dexamethasone",
        "hydrocortisone",
        "cortisone",
        "budesonide",
        "triamcinolone",
        "betamethasone",
    }


# DOMAIN.md's opioids, and those its vocabulary rule names.
REQUIRED_OPIOIDS = """
morphine; oxycodone; hydrocodone; hydromorphone; oxymorphone; codeine; tramadol; tapentadol
fentanyl; methadone; buprenorphine; meperidine; diphenoxylate; difenoxin; levorphanol
pentazocine; butorphanol; nalbuphine; benzhydrocodone; sufentanil; dihydrocodeine; opium
oliceridine; kratom (mitragynine); tianeptine
"""


def listed(block: str) -> list[str]:
    """The items of a block of text, one or more a line, separated by semicolons."""
    return [item.strip() for item in re.split(r"[;\n]", block) if item.strip()]


@pytest.mark.parametrize("generic", listed(REQUIRED_OPIOIDS))
def test_the_required_opioids_are_in_the_vocabulary(generic):
    assert drug_named(generic).group == OPIOID
    assert found(generic) == [(generic, generic)]


def spellings(drug: Drug) -> list[tuple[Drug, str]]:
    """Each name as listed, in capitals, and glued to a strength ("Tramadol50mg"); a name that
    ends in a digit ("Tylenol #3", "M30") takes the strength after a space, since digits glued
    to digits are one number."""
    typed = []
    for name in drug.names:
        glued = f"{name}50mg" if name[-1].isalpha() else f"{name} 50mg"
        typed += [(drug, name), (drug, name.upper()), (drug, glued)]
    return typed


ALL_SPELLINGS = [typed for drug in VOCABULARY for typed in spellings(drug)]


def test_the_generated_table_is_not_empty():
    # So that the next test cannot pass by finding nothing to test.
    assert len(ALL_SPELLINGS) == 3 * 499
    assert (drug_named("oxycodone"), "PERCOCET") in ALL_SPELLINGS
    assert (drug_named("tramadol"), "Ultram50mg") in ALL_SPELLINGS
    assert (drug_named("codeine"), "Tylenol #3 50mg") in ALL_SPELLINGS


@pytest.mark.parametrize(
    ("drug", "text"), ALL_SPELLINGS, ids=[f"{drug.name}:{text}" for drug, text in ALL_SPELLINGS]
)
def test_every_name_is_found_as_its_drug_and_in_no_other_group(drug, text):
    assert {group: mentions(text, group) for group in Group} == {
        group: [Mention(drug, text)] if group == drug.group else [] for group in Group
    }


# Opioids: how clinics type them --------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "drug"),
    [
        # Glued to a strength, combination products, release forms.
        ("Tramadol50mg", "tramadol"),
        ("Percocet10/325", "oxycodone"),
        ("Percocet 10/325 mg q6h prn", "oxycodone"),
        ("Tylenol #3", "codeine"),
        ("Tylenol 3", "codeine"),
        ("Tylenol-3", "codeine"),
        ("Tylenol#3", "codeine"),
        ("Tylenol No. 3", "codeine"),
        ("T#3", "codeine"),
        ("Tylenol w/ codeine", "codeine"),
        ("Tylenol w/codeine #4", "codeine"),
        ("Tylenol with codeine", "codeine"),
        ("APAP/codeine 300/30", "codeine"),
        ("ASA/codeine", "codeine"),
        ("acetaminophen-codeine 300-30 mg", "codeine"),
        ("promethazine w/ codeine syrup", "codeine"),
        ("Robitussin AC", "codeine"),
        ("Fioricet with codeine", "codeine"),
        ("oxy", "oxycodone"),
        ("Oxy 10 mg", "oxycodone"),
        ("oxys", "oxycodone"),
        ("percs", "oxycodone"),
        ("roxies", "oxycodone"),
        ("M30", "oxycodone"),
        ("M30s", "oxycodone"),
        ("APAP/oxycodone 5/325", "oxycodone"),
        ("OxyContin 20 mg ER", "oxycodone"),
        ("Xtampza ER 13.5mg", "oxycodone"),
        ("RoxyBond 5 mg", "oxycodone"),
        ("OxycodoneER", "oxycodone"),
        ("oxycodone HCl 5mg IR", "oxycodone"),
        ("percocets", "oxycodone"),
        ("Percocets PRN", "oxycodone"),
        ("bupe", "buprenorphine"),
        ("bupe/nal 8/2", "buprenorphine"),
        ("Suboxone 8/2 mg film", "buprenorphine"),
        ("buprenorphine/naloxone 8-2 mg SL", "buprenorphine"),
        ("Butrans patch", "buprenorphine"),
        ("Butrans 10 mcg/hr patch weekly", "buprenorphine"),
        ("Belbuca", "buprenorphine"),
        ("Sublocade", "buprenorphine"),
        ("Sublocade 300 mg monthly injection", "buprenorphine"),
        ("Brixadi", "buprenorphine"),
        ("Zubsolv 5.7/1.4", "buprenorphine"),
        ("Nucynta ER", "tapentadol"),
        ("Nucynta ER 100mg BID", "tapentadol"),
        ("Hysingla", "hydrocodone"),
        ("Hysingla ER 20 mg", "hydrocodone"),
        ("Norco 10/325", "hydrocodone"),
        ("norcos", "hydrocodone"),
        ("hydros", "hydrocodone"),
        ("vikes", "hydrocodone"),
        ("Vicodin", "hydrocodone"),
        ("hydrocodone/APAP 5/325", "hydrocodone"),
        ("Tussionex", "hydrocodone"),
        ("Tussionex 5 mL q12h", "hydrocodone"),
        ("Tussigon", "hydrocodone"),
        ("Hycodan syrup", "hydrocodone"),
        ("Lomotil", "diphenoxylate"),
        ("Lomotil 2.5 mg prn diarrhea", "diphenoxylate"),
        ("diphenoxylate/atropine", "diphenoxylate"),
        ("Motofen", "difenoxin"),
        ("difenoxin", "difenoxin"),
        ("Motofen / difenoxin", "difenoxin"),
        ("levorphanol 2 mg", "levorphanol"),
        ("pentazocine/naloxone", "pentazocine"),
        ("butorphanol nasal spray", "butorphanol"),
        ("nalbuphine", "nalbuphine"),
        ("Apadaz", "benzhydrocodone"),
        ("Dsuvia", "sufentanil"),
        ("Seglentis", "tramadol"),
        ("Seglentis (celecoxib/tramadol)", "tramadol"),
        ("Ultram 50", "tramadol"),
        ("kratom", "kratom (mitragynine)"),
        ("Kratom powder daily", "kratom (mitragynine)"),
        ("mitragynine", "kratom (mitragynine)"),
        ("7-OH", "kratom (mitragynine)"),
        ("7OH tablets", "kratom (mitragynine)"),
        ("Zaza red (tianeptine)", "tianeptine"),
        ("MS Contin 15 mg", "morphine"),
        ("MSIR", "morphine"),
        ("morphineSR", "morphine"),
        ("morphine sulfate ER 30 mg", "morphine"),
        ("Dilaudid 2mg", "hydromorphone"),
        ("Opana ER", "oxymorphone"),
        ("fentanyl 25 mcg patch", "fentanyl"),
        ("Duragesic", "fentanyl"),
        ("methadone 10 mg daily", "methadone"),
        ("Methadose", "methadone"),
        ("Demerol", "meperidine"),
        ("pethidine", "meperidine"),
        ("paregoric", "opium"),
        ("B&O suppository", "opium"),
        ("heroin", "heroin"),
        ("narcotic pain pills", "unnamed opioid"),
        ("opioids PRN", "unnamed opioid"),
        # Misspellings of names of 8 letters or more, one edit away.
        ("oxycodon", "oxycodone"),
        ("oxycodne 5 mg", "oxycodone"),
        ("hydrocodon", "hydrocodone"),
        ("percoset", "oxycodone"),
        ("percosets", "oxycodone"),
        ("fentanil", "fentanyl"),
        ("tramadal", "tramadol"),
        ("tramdol 50 mg", "tramadol"),
        ("OxycodonER", "oxycodone"),
        ("buprenorphin", "buprenorphine"),
        ("bupernorphine", "buprenorphine"),
        ("methdone", "methadone"),
        ("Suboxon", "buprenorphine"),
    ],
)
def test_opioids_as_clinics_type_them(text, drug):
    assert found(text) == [(drug, text)]


def test_a_list_names_each_opioid_once_in_order_of_first_appearance():
    text = (
        "Lisinopril 10mg, Tramadol50mg; Percocet10/325\n"
        "sertraline 50 mg\n"
        "oxycodone 5 mg q4h prn; tramadol 100 mg ER"
    )
    assert found(text) == [("tramadol", "Tramadol50mg"), ("oxycodone", "Percocet10/325")]


def test_the_first_entry_that_names_a_drug_is_the_one_quoted():
    assert found("oxycodone 5 mg\nPercocet 10/325") == [("oxycodone", "oxycodone 5 mg")]
    assert found("  Percocet 10/325  \r\n oxycodone 5 mg") == [("oxycodone", "Percocet 10/325")]


def test_entries_split_on_lines_commas_and_semicolons_but_not_on_slashes_or_in_parentheses():
    text = "metformin, Norco 10/325 (for back pain, knee); Tylenol #3\n\nkratom"
    assert found(text) == [
        ("hydrocodone", "Norco 10/325 (for back pain, knee)"),
        ("codeine", "Tylenol #3"),
        ("kratom (mitragynine)", "kratom"),
    ]


def test_one_entry_can_name_several_drugs():
    assert found("Percocet and tramadol and morphine") == [
        ("oxycodone", "Percocet and tramadol and morphine"),
        ("tramadol", "Percocet and tramadol and morphine"),
        ("morphine", "Percocet and tramadol and morphine"),
    ]


@pytest.mark.parametrize("text", ["", "   ", "\n\n", ",;,"])
def test_nothing_written_names_nothing(text):
    assert {group: mentions(text, group) for group in Group} == {group: [] for group in Group}


# Opioids: what is not one ------------------------------------------------------------------

# Common prescriptions and supplements as clinics write them, none of them an opioid.
NOT_OPIOIDS = listed(
    """
lisinopril 10 mg; metformin ER 500mg; atorvastatin 40 mg; rosuvastatin; simvastatin 20mg
amlodipine 5 mg; losartan 50 mg; hydrochlorothiazide 25 mg; HCTZ; metoprolol succinate ER 25 mg
carvedilol; propranolol 10 mg prn; furosemide 20 mg; spironolactone 100 mg; warfarin
Eliquis 5 mg BID; Xarelto; clopidogrel; aspirin 81 mg; levothyroxine 50 mcg; Synthroid 75 mcg
Armour Thyroid 60mg; liothyronine 5 mcg; T3 5 mcg; sertraline 50 mg; escitalopram 10 mg
fluoxetine 20mg; bupropion XL 150 mg; Wellbutrin SR; venlafaxine ER 75 mg; desvenlafaxine
duloxetine 60 mg; Cymbalta; mirtazapine 15 mg; trazodone 50 mg qhs; amitriptyline 10 mg
nortriptyline; vortioxetine (Trintellix); lamotrigine 100 mg; topiramate 25 mg; Topamax
levetiracetam; oxcarbazepine 300 mg; Oxtellar XR; gabapentin 300 mg TID; pregabalin (Lyrica) 75 mg
clonazepam 0.5 mg; alprazolam; lorazepam prn; diazepam 5 mg; zolpidem 5 mg; eszopiclone
melatonin 3 mg; hydroxyzine 25 mg; buspirone 10 mg; quetiapine 25 mg; aripiprazole
lithium carbonate; methylphenidate ER 36 mg; Concerta; Metadate CD; Adderall XR 20 mg; Vyvanse
modafinil; atomoxetine; clonidine 0.1 mg; guanfacine ER; oxybutynin ER 10 mg; Oxytrol patch
oxymetazoline (Afrin); oxandrolone; tamsulosin; finasteride; sildenafil; tadalafil 5 mg
methocarbamol 750 mg; cyclobenzaprine 10 mg; Flexeril; tizanidine 4 mg; baclofen 10 mg
carisoprodol; Soma; orphenadrine (Norflex); meloxicam 15 mg; naproxen 500 mg; Aleve
ibuprofen 800 mg; Advil; Motrin; celecoxib 200 mg; Celebrex; diclofenac; Voltaren gel
lidocaine patch; Lidoderm; capsaicin cream; acetaminophen 500 mg; Tylenol 325 mg; Tylenol 500mg
Tylenol Extra Strength; Tylenol PM; Tylenol Arthritis 650 mg; Tylenol 2 tabs prn
Excedrin Migraine; Percogesic; Fioricet; Fiorinal; butalbital/APAP/caffeine; sumatriptan (Imitrex)
Nurtec ODT; Ubrelvy; ondansetron 4 mg; Zofran ODT; promethazine 25 mg; Phenergan; metoclopramide
dicyclomine; hyoscyamine; Bentyl; Linzess; Amitiza; Movantik; Relistor; Miralax; docusate; senna
Metamucil; psyllium; omeprazole 20 mg; pantoprazole 40mg; esomeprazole; famotidine 20 mg
Pepto-Bismol; mesalamine; Lialda; sulfasalazine; hydroxychloroquine 200 mg; Plaquenil
prednisone 5 mg; methotrexate 15 mg weekly; Humira; insulin glargine; Lantus; Ozempic 0.5 mg
semaglutide; Mounjaro; Wegovy; Zepbound; glipizide; Jardiance; Farxiga; estradiol patch
progesterone 100 mg; testosterone cypionate; DHEA 25 mg; pregnenolone; oral contraceptive
spironolactone; minoxidil 2.5 mg; montelukast; cetirizine; Zyrtec; loratadine; Claritin
fexofenadine; Allegra; diphenhydramine; Benadryl; Flonase; albuterol inhaler; Symbicort; Advair
dextromethorphan; Robitussin DM; Robitussin; Delsym; guaifenesin 600 mg; Mucinex DM
benzonatate (Tessalon Perles); NyQuil; DayQuil; Sudafed; valacyclovir; acyclovir; amoxicillin
azithromycin; doxycycline; nitrofurantoin; fluconazole; ivermectin; Paxlovid; naltrexone
naltrexone 4.5 mg; LDN 1.5 mg; low-dose naltrexone; naloxone; Narcan; Narcan nasal spray; Kloxxado
Vivitrol; Contrave; lofexidine (Lucemyra); loperamide; Imodium A-D; Viberzi; esketamine (Spravato)
cannabis; CBD oil; vitamin D 2000 IU; vitamin D3 5000 IU; vitamin B12; methyl B12; methylfolate
B complex; folic acid; iron; ferrous sulfate 325 mg; magnesium glycinate; magnesium citrate; zinc
vitamin C; fish oil; omega-3; CoQ10; turmeric; curcumin; probiotic; collagen; glutathione
NAC (N-acetylcysteine); alpha lipoic acid; ashwagandha; L-theanine; 5-HTP; St John's wort
valerian; elderberry; quercetin; resveratrol; berberine; creatine; biotin; calcium citrate
potassium chloride; electrolytes; MSM 1000 mg; multiple sclerosis (MS); saline nasal spray
artificial tears; Restasis; latanoprost eye drops; Norvasc; Lotrel; Lamictal; Belsomra; Strattera
Nuvigil; Depakote; Xtandi; Taltz; Actos; Zoloft; Tessalon; Motegrity; lean protein shake
trandolapril; tranexamic acid; fenofibrate; methimazole; metadoxine; hydralazine; hydroxyurea
hydrocortisone cream
"""
)


def test_the_negative_list_is_long():
    assert len(set(NOT_OPIOIDS)) == len(NOT_OPIOIDS) >= 150


@pytest.mark.parametrize("text", NOT_OPIOIDS)
def test_common_medications_are_not_opioids(text):
    assert found(text) == []


def test_the_whole_negative_list_as_one_medication_list_names_no_opioid():
    assert found("\n".join(NOT_OPIOIDS)) == []


@pytest.mark.parametrize(
    "text",
    [
        "non-codeine cough syrup",
        "non codeine cough syrup",
        "codeine-free",
        "codeine free cough syrup",
        "no opioids",
        "No opioid",
        "not oxycodone",
        "denies opioid use",
        "Tylenol without codeine",
        "Tylenol w/o codeine",
        "no Tylenol with codeine",
        "opioid-free for 14 days",
        "non-opioid analgesic",
        "naltrexone (opioid antagonist)",
        "opiate blocker",
        "narcotic antagonist",
    ],
)
def test_negated_names_are_not_mentions(text):
    assert found(text) == []


def test_a_negation_covers_only_the_name_it_stands_next_to():
    assert found("no codeine, tramadol 50 mg") == [("tramadol", "tramadol 50 mg")]
    assert found("codeine-free syrup and oxycodone") == [
        ("oxycodone", "codeine-free syrup and oxycodone")
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("oxybutynin", []),  # "oxy" is a whole word only
        ("Oxycodeine", []),  # neither name, and two edits from oxycodone
        ("hydromorphone", [("hydromorphone", "hydromorphone")]),  # not morphine
        ("methylphenidate", []),  # not methadone
        ("dihydrocodeine", [("dihydrocodeine", "dihydrocodeine")]),  # not codeine
        ("benzhydrocodone", [("benzhydrocodone", "benzhydrocodone")]),  # not hydrocodone
        ("Codeinex", []),
    ],
)
def test_never_inside_a_longer_word(text, expected):
    assert found(text) == expected


@pytest.mark.parametrize(
    ("text", "group", "expected"),
    [
        # Shorthand left out because it means something else in a medication list.
        ("T3 25 mcg", OPIOID, []),
        ("T3 25 mcg", THYROID, [("liothyronine", "T3 25 mcg")]),
        ("MS", OPIOID, []),
        ("lean", OPIOID, []),
        ("subs", OPIOID, []),
        ("blues", OPIOID, []),
        ("Tylenol 2 tabs", OPIOID, []),
        ("Tylenol #2", OPIOID, [("codeine", "Tylenol #2")]),
        ("bup 150", OPIOID, []),
        ("meth", OPIOID, []),
        ("hydro 25", OPIOID, []),
        ("pred 5 mg", IMMUNOSUPPRESSANT, []),
        ("thyroid nodule", THYROID, []),
        # Kept although it can mean something else: a false alarm is the safe side.
        ("Oxy acne wash", OPIOID, [("oxycodone", "Oxy acne wash")]),
    ],
)
def test_ambiguous_shorthand_is_left_out(text, group, expected):
    assert found(text, group) == expected


# Peripheral opioids: a warning, not an error ---------------------------------------------------


@pytest.mark.parametrize(
    ("text", "drug"),
    [
        ("loperamide 2 mg prn", "loperamide"),
        ("Imodium A-D", "loperamide"),
        ("Imodium AD 2mg", "loperamide"),
        ("Imodium", "loperamide"),
        ("Diamode", "loperamide"),
        ("Viberzi 100 mg BID", "eluxadoline"),
        ("eluxadoline", "eluxadoline"),
    ],
)
def test_peripheral_opioids_are_found_apart_from_opioids(text, drug):
    assert found(text, PERIPHERAL) == [(drug, text)]
    assert found(text, OPIOID) == []


# Immunosuppressants: systemic corticosteroids at any dose, not creams or inhalers --------------


@pytest.mark.parametrize(
    ("text", "drug"),
    [
        ("prednisone 5 mg", "prednisone"),
        ("Medrol dose pack", "methylprednisolone"),
        ("Medrol Dosepak", "methylprednisolone"),
        ("Solu-Medrol 125 mg IV", "methylprednisolone"),
        ("hydrocortisone 10 mg tablet", "hydrocortisone"),
        ("Cortef 5mg", "hydrocortisone"),
        ("dexamethasone 4 mg", "dexamethasone"),
        ("Decadron", "dexamethasone"),
        ("prednisolone 15 mg/5 mL oral solution", "prednisolone"),
        ("Orapred ODT", "prednisolone"),
        ("budesonide 9 mg (Entocort EC)", "budesonide"),
        ("Uceris 9mg", "budesonide"),
        ("Kenalog-40 injection", "triamcinolone"),
        ("cortisone acetate 25 mg", "cortisone"),
        ("fludrocortisone 0.1 mg", "fludrocortisone"),
        ("methotrexate 15 mg weekly", "methotrexate"),
        ("MTX 20mg weekly", "methotrexate"),
        ("Humira pen", "adalimumab"),
        ("Hadlima 40 mg q2w", "adalimumab"),
        ("Xeljanz XR", "tofacitinib"),
        ("Rinvoq 15mg", "upadacitinib"),
        ("Olumiant 2 mg", "baricitinib"),
        ("Litfulo", "ritlecitinib"),
        ("Gilenya", "fingolimod"),
        ("Ocrevus infusion q6 months", "ocrelizumab"),
        ("Kesimpta", "ofatumumab"),
        ("Tysabri", "natalizumab"),
        ("Stelara 90 mg", "ustekinumab"),
        ("Entyvio", "vedolizumab"),
        ("Actemra", "tocilizumab"),
        ("tacrolimus 1 mg BID", "tacrolimus"),
        ("Prograf", "tacrolimus"),
        ("cyclosporine 100 mg", "cyclosporine"),
        ("Neoral", "cyclosporine"),
        ("CellCept 500", "mycophenolate"),
        ("mycophenolate mofetil", "mycophenolate"),
        ("rapamycin 6 mg weekly", "sirolimus"),
        ("azathioprine 50 mg", "azathioprine"),
        ("Imuran", "azathioprine"),
    ],
)
def test_immunosuppressants_are_found(text, drug):
    assert found(text, IMMUNOSUPPRESSANT) == [(drug, text)]


@pytest.mark.parametrize(
    "text",
    [
        "hydrocortisone 1% cream",
        "hydrocortisone 2.5%",
        "hydrocortisone rectal foam",
        "hydrocortisone suppository",
        "budesonide inhaler",
        "budesonide nebs 0.5 mg",
        "budesonide nasal spray",
        "Pulmicort",
        "Pulmicort Respules",
        "Rhinocort",
        "Symbicort 160/4.5 2 puffs",
        "dexamethasone eye drops",
        "dexamethasone ophthalmic",
        "prednisolone acetate 1% eye drops",
        "Pred Forte",
        "triamcinolone 0.1% cream",
        "Kenalog cream",
        "betamethasone dipropionate ointment",
        "clobetasol",
        "cortisone cream",
        "Restasis",
        "Cequa",
        "cyclosporine ophthalmic emulsion",
        "tacrolimus 0.1% ointment",
        "Protopic ointment",
        "sirolimus gel (Hyftor)",
        "ruxolitinib cream (Opzelura)",
        "Flonase",
        "fluticasone",
        "hydroxychloroquine",
        "sulfasalazine",
        "no prednisone",
        "prednisone-free",
    ],
)
def test_local_and_non_immunosuppressive_uses_are_not_found(text):
    assert found(text, IMMUNOSUPPRESSANT) == []


def test_a_local_use_in_one_entry_does_not_hide_a_tablet_in_another():
    text = "hydrocortisone 1% cream\nhydrocortisone 10 mg tablet"
    assert found(text, IMMUNOSUPPRESSANT) == [("hydrocortisone", "hydrocortisone 10 mg tablet")]
    assert found("prednisone 5 mg and hydrocortisone cream", IMMUNOSUPPRESSANT) == [
        ("prednisone", "prednisone 5 mg and hydrocortisone cream")
    ]


# Thyroid replacement -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "drug"),
    [
        ("Synthroid 75 mcg", "levothyroxine"),
        ("levothyroxine 50 mcg", "levothyroxine"),
        ("Levothyroxin 88mcg", "levothyroxine"),
        ("Tirosint-SOL", "levothyroxine"),
        ("Armour Thyroid 60mg", "desiccated thyroid"),
        ("Armour 90 mg", "desiccated thyroid"),
        ("NP Thyroid", "desiccated thyroid"),
        ("Nature-Throid 1 grain", "desiccated thyroid"),
        ("NDT 60 mg", "desiccated thyroid"),
        ("Cytomel 5 mcg", "liothyronine"),
        ("compounded T3 SR 10 mcg", "liothyronine"),
        ("Thyrolar", "liotrix"),
    ],
)
def test_thyroid_replacement_is_found(text, drug):
    assert found(text, THYROID) == [(drug, text)]


@pytest.mark.parametrize(
    "text", ["methimazole", "propylthiouracil", "thyroid cancer", "selenium", "iodine"]
)
def test_other_thyroid_words_are_not_replacement(text):
    assert found(text, THYROID) == []


# Allergy lists: naltrexone and naloxone ---------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("naltrexone", [("naltrexone", "naltrexone")]),
        ("Narcan (hives)", [("naloxone", "Narcan (hives)")]),
        ("Narcan (hives, rash)", [("naloxone", "Narcan (hives, rash)")]),
        ("LDN", [("naltrexone", "LDN")]),
        (
            "low-dose naltrexone - vivid dreams",
            [("naltrexone", "low-dose naltrexone - vivid dreams")],
        ),
        (
            "Vivitrol (injection site reaction)",
            [("naltrexone", "Vivitrol (injection site reaction)")],
        ),
        ("Revia", [("naltrexone", "Revia")]),
        ("Contrave", [("naltrexone", "Contrave")]),
        ("naloxone nasal spray", [("naloxone", "naloxone nasal spray")]),
        ("Kloxxado", [("naloxone", "Kloxxado")]),
        ("Zimhi", [("naloxone", "Zimhi")]),
        ("buprenorphine/naloxone", [("naloxone", "buprenorphine/naloxone")]),
        (
            "penicillin (rash), sulfa; naltrexone\nNarcan",
            [("naltrexone", "naltrexone"), ("naloxone", "Narcan")],
        ),
        ("NKDA", []),
        ("penicillin", []),
        ("sulfa drugs", []),
        ("codeine (nausea)", []),
        ("Suboxone", []),
        ("Zubsolv", []),
        ("morphine", []),
        ("no naltrexone allergy", []),
    ],
)
def test_allergy_lists_are_screened_for_naltrexone_and_naloxone(text, expected):
    assert found(text, ANTAGONIST) == expected


def test_naltrexone_and_naloxone_are_not_opioids():
    text = "naltrexone 4.5 mg\nLDN\nNarcan\nVivitrol\nnaloxone"
    assert found(text, OPIOID) == []
    assert found(text, ANTAGONIST) == [("naltrexone", "naltrexone 4.5 mg"), ("naloxone", "Narcan")]
