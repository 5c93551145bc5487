"""The medication vocabulary, as data with its sources, and the matcher that finds drugs in the
free text a clinic types: a patient's current-medication list, or an allergy list.

Plain Python, no Django and no database, so the dose rules, the forms and the tests read the
same lists. How text is read:
- Entries: the text is split on new lines, commas and semicolons, but not on "/" ("APAP/codeine",
  "Percocet 10/325" stay one entry), nor on a comma or semicolon inside parentheses
  ("Narcan (hives, rash)" is one entry).
- Words: runs of letters, runs of digits, and "#", lower-cased; "w/" reads "with", "w/o"
  "without", "&" "and". So "Percocet10/325" is percocet 10 325 and "Tylenol-3" tylenol 3.
  "#" is a word of its own so that "T#3" (Tylenol #3) stays apart from "T3" (liothyronine).
- A name matches a contiguous run of words ("MS Contin", "Tylenol w/ codeine"); its last word
  may carry a plural "s" or a glued release suffix ("Percocets", "OxycodoneER"); a one-word name
  of 8 letters or more also matches a misspelling one edit away ("oxycodon", "percoset").
- Not a mention: a name right after "non", "no", "not", "without" or "denies", or right before
  "free", "antagonist" or "blocker" ("non-codeine", "codeine-free", "no opioids", "opioid
  antagonist"); a drug that is also used on the skin, in the eye or nose or inhaled
  (systemic_only) when its entry says so ("hydrocortisone 1% cream", "budesonide inhaler").
Mention.written is the whole entry, trimmed, as the clinic typed it: a finding then shows the
strength and form that were written ("Percocet10/325: oxycodone"), not just the matched word.
"""

import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum

from rapidfuzz import process
from rapidfuzz.distance import DamerauLevenshtein


class Group(StrEnum):
    # Agonists, partial agonists, mixed agonist-antagonists, antidiarrhoeal and antitussive
    # opioids, opioid-like substances: contraindicated with naltrexone (an error).
    OPIOID = "opioid"
    # Peripherally acting opioid agonists (loperamide, eluxadoline): a warning, not an error.
    PERIPHERAL_OPIOID = "peripheral_opioid"
    # Transplant drugs, methotrexate, biologics, JAK inhibitors, S1P modulators, systemic
    # corticosteroids at any dose: a warning.
    IMMUNOSUPPRESSANT = "immunosuppressant"
    THYROID_REPLACEMENT = "thyroid_replacement"
    # Naltrexone and naloxone: screens allergy lists.
    OPIOID_ANTAGONIST = "opioid_antagonist"


@dataclass(frozen=True)
class Drug:
    name: str  # how a finding names it: lower-case generic ("oxycodone")
    group: Group
    drug_class: str  # in plain words ("partial opioid agonist", "JAK inhibitor")
    names: tuple[str, ...]  # every spelling that identifies it: generic, brands, shorthand
    # Also used on the skin, in the eye or nose, inhaled or rectally: not a mention when its
    # entry says so ("hydrocortisone 1% cream"), since that use does not suppress the immune
    # system; tablets and injections of the same drug are.
    systemic_only: bool = False


@dataclass(frozen=True)
class Mention:
    drug: Drug
    written: str  # the entry as the clinic typed it, trimmed ("Percocet10/325")


SOURCES: dict[Group, str] = {
    Group.OPIOID: (
        "Naltrexone prescribing information (ReVia, Vivitrol: contraindicated with opioid "
        "agonists and partial agonists, incl. opioid antidiarrhoeals and cough medicines); "
        "generics and brands from the FDA's opioid analgesic lists, Drugs@FDA and the Orange "
        "Book; kratom and tianeptine from FDA and DEA warnings (opioid-receptor agonists sold "
        "unapproved)"
    ),
    Group.PERIPHERAL_OPIOID: (
        "Loperamide (Imodium) and eluxadoline (Viberzi) prescribing information (peripherally "
        "acting opioid agonists); brands from Drugs@FDA"
    ),
    Group.IMMUNOSUPPRESSANT: (
        "Pharmacy policy (transplant drugs, methotrexate, biologics, JAK inhibitors, S1P "
        "modulators, systemic corticosteroids); brands from Drugs@FDA, biosimilars from the "
        "FDA Purple Book"
    ),
    Group.THYROID_REPLACEMENT: (
        "LDN Research Trust guidance (Hashimoto's on thyroid replacement); brands from Drugs@FDA "
        "and the Orange Book, desiccated thyroid (not FDA-approved) from its makers' labels"
    ),
    Group.OPIOID_ANTAGONIST: (
        "Naltrexone prescribing information (contraindicated in hypersensitivity to "
        "naltrexone); naloxone prescribing information; brands from Drugs@FDA"
    ),
}


def _drug(
    group: Group, name: str, drug_class: str, names: str, *, systemic_only: bool = False
) -> Drug:
    """A Drug whose names are written as one comma-separated list, so the table stays compact."""
    return Drug(name, group, drug_class, _listed(names), systemic_only)


def _listed(text: str) -> tuple[str, ...]:
    """'a, b c, d' -> ('a', 'b c', 'd')."""
    return tuple(item.strip() for item in text.split(",") if item.strip())


AGONIST = "opioid agonist"
MIXED = "mixed opioid agonist-antagonist"

# Shorthand deliberately left out, because it means something else in a medication list:
# "T3" (liothyronine; "T#3" is kept), "MS" (multiple sclerosis; "MS Contin", "MSIR" are kept),
# "Tylenol 2" ("Tylenol 2 tabs" is a count of plain Tylenol; "Tylenol #2" is kept), "lean"
# (lean protein), "subs"/"sub" (sublingual, subcutaneous), "blues", "OC" (oral contraceptive),
# "bup" (bupropion), "meth" (methamphetamine, methocarbamol), "hydro" (hydrochlorothiazide,
# hydroxyzine; "hydros" is kept), "vics" (Vicks), "dope", "smack", "H" (heroin slang), "morph".
# "oxy" is kept although an acne wash is sold as Oxy: a false alarm is the safe side.
# The class words "opioid", "opiate", "narcotic" are kept (as an unnamed opioid), so that
# "narcotic pain pills" is caught; "no opioids" and "opioid antagonist" are not mentions.
OPIOIDS = (
    _drug(
        Group.OPIOID,
        "morphine",
        AGONIST,
        "morphine, morphine sulfate, MS Contin, MSIR, MSER, MSO4, Kadian, Arymo, Arymo ER, "
        "Morphabond, Morphabond ER, Avinza, Embeda, Roxanol, Oramorph, Infumorph, Duramorph, "
        "Astramorph, Mitigo",
    ),
    _drug(
        Group.OPIOID,
        "oxycodone",
        AGONIST,
        "oxycodone, oxycodone HCl, OxyContin, Xtampza, Xtampza ER, Roxicodone, RoxyBond, Oxaydo, "
        "OxyIR, Oxecta, OxyFast, Percocet, Endocet, Roxicet, Primlev, Nalocet, Prolate, Percodan, "
        "Endodan, Oxycet, Xartemis, Xartemis XR, Tylox, Magnacet, Combunox, Targiniq, Troxyca, "
        "APAP/oxycodone, oxycodone/APAP, oxy, roxy, roxies, perc, percs, oxycotton, M30",
    ),
    _drug(
        Group.OPIOID,
        "hydrocodone",
        AGONIST,
        "hydrocodone, hydrocodone bitartrate, Hysingla, Hysingla ER, Zohydro, Zohydro ER, "
        "Vantrela, Vantrela ER, Vicodin, Vicodin ES, Vicodin HP, Norco, Lortab, Lorcet, "
        "Lorcet Plus, Xodol, Verdrocet, Hycet, Zamicet, Zydone, Anexsia, Maxidone, Co-Gesic, "
        "Stagesic, Vicoprofen, Reprexain, Ibudone, Xylon, APAP/hydrocodone, hydrocodone/APAP, "
        "Tussionex, Tussigon, Hycodan, Hydromet, TussiCaps, Hycofenix, Obredon, Flowtuss, "
        "Zutripro, Rezira, Vituz, hydros, vikes",
    ),
    _drug(
        Group.OPIOID,
        "hydromorphone",
        AGONIST,
        "hydromorphone, Dilaudid, Dilaudid-HP, Exalgo, Palladone",
    ),
    _drug(
        Group.OPIOID,
        "oxymorphone",
        AGONIST,
        "oxymorphone, Opana, Opana ER, Numorphan",
    ),
    _drug(
        Group.OPIOID,
        "codeine",
        AGONIST,
        "codeine, codeine sulfate, codeine phosphate, Tylenol with codeine, Tylenol #2, "
        "Tylenol #3, Tylenol #4, Tylenol No. 2, Tylenol No. 3, Tylenol No. 4, Tylenol 3, "
        "Tylenol 4, T#3, T#4, APAP/codeine, ASA/codeine, Fioricet with codeine, "
        "Fiorinal with codeine, Tuzistra, Tuzistra XR, Tuxarin, Tuxarin ER, "
        "promethazine with codeine, Phenergan with codeine, Robitussin AC, Robitussin DAC, "
        "Cheratussin, Cheratussin AC, Cheratussin DAC, Mytussin AC, guaifenesin with codeine",
    ),
    _drug(
        Group.OPIOID,
        "dihydrocodeine",
        AGONIST,
        "dihydrocodeine, Synalgos, Synalgos-DC, Trezix, Panlor",
    ),
    _drug(
        Group.OPIOID,
        "tramadol",
        AGONIST,
        "tramadol, Ultram, Ultram ER, Ultracet, ConZip, Ryzolt, Rybix, Qdolo, Seglentis",
    ),
    _drug(Group.OPIOID, "tapentadol", AGONIST, "tapentadol, Nucynta, Nucynta ER"),
    _drug(
        Group.OPIOID,
        "fentanyl",
        AGONIST,
        "fentanyl, fentanyl citrate, Duragesic, Actiq, Fentora, Abstral, Subsys, Lazanda, "
        "Onsolis, Ionsys, Sublimaze, fent",
    ),
    _drug(Group.OPIOID, "sufentanil", AGONIST, "sufentanil, Dsuvia, Sufenta"),
    _drug(Group.OPIOID, "alfentanil", AGONIST, "alfentanil, Alfenta"),
    _drug(Group.OPIOID, "remifentanil", AGONIST, "remifentanil, Ultiva"),
    _drug(Group.OPIOID, "carfentanil", AGONIST, "carfentanil, carfentanyl"),
    _drug(Group.OPIOID, "oliceridine", AGONIST, "oliceridine, Olinvyk"),
    _drug(
        Group.OPIOID,
        "methadone",
        AGONIST,
        "methadone, Dolophine, Methadose, Diskets, Methadone Intensol",
    ),
    _drug(Group.OPIOID, "levomethadyl", AGONIST, "levomethadyl, LAAM, Orlaam"),
    _drug(
        Group.OPIOID,
        "buprenorphine",
        "partial opioid agonist",
        "buprenorphine, Suboxone, Subutex, Zubsolv, Bunavail, Sublocade, Brixadi, Butrans, "
        "Belbuca, Buprenex, Probuphine, Cassipa, bupe, bupe/nal, bup/nal",
    ),
    _drug(
        Group.OPIOID,
        "meperidine",
        AGONIST,
        "meperidine, pethidine, Demerol, Meperitab",
    ),
    _drug(Group.OPIOID, "levorphanol", AGONIST, "levorphanol, Levo-Dromoran"),
    _drug(
        Group.OPIOID, "propoxyphene", AGONIST, "propoxyphene, dextropropoxyphene, Darvon, Darvocet"
    ),
    _drug(Group.OPIOID, "pentazocine", MIXED, "pentazocine, Talwin, Talwin NX, Talacen"),
    _drug(Group.OPIOID, "butorphanol", MIXED, "butorphanol, Stadol, Stadol NS"),
    _drug(Group.OPIOID, "nalbuphine", MIXED, "nalbuphine, Nubain"),
    _drug(Group.OPIOID, "dezocine", MIXED, "dezocine, Dalgan"),
    _drug(
        Group.OPIOID,
        "benzhydrocodone",
        "opioid agonist (hydrocodone prodrug)",
        "benzhydrocodone, Apadaz",
    ),
    _drug(
        Group.OPIOID,
        "diphenoxylate",
        "antidiarrhoeal opioid",
        "diphenoxylate, Lomotil, Lonox, Lomocot",
    ),
    _drug(Group.OPIOID, "difenoxin", "antidiarrhoeal opioid", "difenoxin, Motofen"),
    _drug(
        Group.OPIOID,
        "opium",
        "opioid agonist (opium alkaloids)",
        "opium, opium tincture, tincture of opium, laudanum, paregoric, belladonna and opium, B&O",
    ),
    _drug(
        Group.OPIOID,
        "heroin",
        "opioid agonist (illicit)",
        "heroin, diacetylmorphine, diamorphine",
    ),
    _drug(
        Group.OPIOID,
        "kratom (mitragynine)",
        "opioid-receptor agonist (botanical)",
        "kratom, mitragynine, Mitragyna speciosa, 7-hydroxymitragynine, hydroxymitragynine, "
        "7-OH, ketum",
    ),
    _drug(
        Group.OPIOID,
        "tianeptine",
        "opioid-receptor agonist (unapproved in the US)",
        "tianeptine, Zaza, Tianaa, Neptune's Fix, Neptunes Fix, Coaxil, Stablon",
    ),
    _drug(
        Group.OPIOID,
        "unnamed opioid",
        "opioid, by its class name",
        "opioid, opiate, narcotic",
    ),
)

PERIPHERAL_OPIOIDS = (
    _drug(
        Group.PERIPHERAL_OPIOID,
        "loperamide",
        "peripherally acting opioid agonist (antidiarrhoeal)",
        "loperamide, loperamide HCl, Imodium, Imodium A-D, Imodium AD, Diamode",
    ),
    _drug(
        Group.PERIPHERAL_OPIOID,
        "eluxadoline",
        "peripherally acting opioid agonist (IBS with diarrhoea)",
        "eluxadoline, Viberzi",
    ),
)

CALCINEURIN = "calcineurin inhibitor (transplant)"
MTOR = "mTOR inhibitor (transplant)"
TNF = "TNF inhibitor (biologic)"
CD20 = "anti-CD20 antibody (biologic)"
IL6 = "IL-6 receptor antibody (biologic)"
JAK = "JAK inhibitor"
S1P = "S1P receptor modulator"
STEROID = "systemic corticosteroid"

# Tacrolimus (Protopic), cyclosporine (Restasis, Cequa), sirolimus (Hyftor) and ruxolitinib
# (Opzelura) also come as ointments, eye drops and gels; those brands are left out and the
# generics are systemic_only. Pulmicort, Rhinocort, Symbicort (budesonide), Pred Forte
# (prednisolone eye drops), Nasacort (triamcinolone) are inhaled, nasal or ophthalmic: left out.
# "pred", "dex" (dexamethasone, dexmethylphenidate), "aza" are ambiguous shorthand: left out.
IMMUNOSUPPRESSANTS = (
    _drug(
        Group.IMMUNOSUPPRESSANT,
        "tacrolimus",
        CALCINEURIN,
        "tacrolimus, Prograf, Envarsus, Envarsus XR, Astagraf, Astagraf XL",
        systemic_only=True,
    ),
    _drug(
        Group.IMMUNOSUPPRESSANT,
        "cyclosporine",
        CALCINEURIN,
        "cyclosporine, ciclosporin, cyclosporin, Neoral, Sandimmune, Gengraf",
        systemic_only=True,
    ),
    _drug(Group.IMMUNOSUPPRESSANT, "voclosporin", CALCINEURIN, "voclosporin, Lupkynis"),
    _drug(
        Group.IMMUNOSUPPRESSANT,
        "sirolimus",
        MTOR,
        "sirolimus, rapamycin, Rapamune, Fyarro",
        systemic_only=True,
    ),
    _drug(
        Group.IMMUNOSUPPRESSANT,
        "everolimus",
        MTOR,
        "everolimus, Zortress, Afinitor, Afinitor Disperz, Torpenz",
    ),
    _drug(
        Group.IMMUNOSUPPRESSANT,
        "mycophenolate",
        "antimetabolite (transplant)",
        "mycophenolate, mycophenolate mofetil, mycophenolate sodium, mycophenolic acid, "
        "CellCept, Myfortic, Myhibbin, MMF",
    ),
    _drug(
        Group.IMMUNOSUPPRESSANT,
        "azathioprine",
        "antimetabolite (transplant)",
        "azathioprine, Imuran, Azasan",
    ),
    _drug(
        Group.IMMUNOSUPPRESSANT,
        "belatacept",
        "costimulation blocker (transplant)",
        "belatacept, Nulojix",
    ),
    _drug(
        Group.IMMUNOSUPPRESSANT,
        "methotrexate",
        "antimetabolite",
        "methotrexate, Trexall, Otrexup, Rasuvo, RediTrex, Xatmep, Jylamvo, Rheumatrex, MTX",
    ),
    _drug(
        Group.IMMUNOSUPPRESSANT,
        "adalimumab",
        TNF,
        "adalimumab, Humira, Amjevita, Cyltezo, Hyrimoz, Hadlima, Yusimry, Hulio, Idacio, "
        "Yuflyma, Simlandi, Abrilada",
    ),
    _drug(Group.IMMUNOSUPPRESSANT, "etanercept", TNF, "etanercept, Enbrel, Erelzi, Eticovo"),
    _drug(
        Group.IMMUNOSUPPRESSANT,
        "infliximab",
        TNF,
        "infliximab, Remicade, Inflectra, Renflexis, Avsola, Ixifi, Zymfentra",
    ),
    _drug(Group.IMMUNOSUPPRESSANT, "certolizumab", TNF, "certolizumab, Cimzia"),
    _drug(Group.IMMUNOSUPPRESSANT, "golimumab", TNF, "golimumab, Simponi, Simponi Aria"),
    _drug(
        Group.IMMUNOSUPPRESSANT,
        "rituximab",
        CD20,
        "rituximab, Rituxan, Rituxan Hycela, Truxima, Ruxience, Riabni",
    ),
    _drug(Group.IMMUNOSUPPRESSANT, "ocrelizumab", CD20, "ocrelizumab, Ocrevus, Ocrevus Zunovo"),
    _drug(Group.IMMUNOSUPPRESSANT, "ofatumumab", CD20, "ofatumumab, Kesimpta, Arzerra"),
    _drug(Group.IMMUNOSUPPRESSANT, "ublituximab", CD20, "ublituximab, Briumvi"),
    _drug(
        Group.IMMUNOSUPPRESSANT,
        "natalizumab",
        "integrin antibody (biologic)",
        "natalizumab, Tysabri, Tyruko",
    ),
    _drug(
        Group.IMMUNOSUPPRESSANT,
        "ustekinumab",
        "IL-12/23 antibody (biologic)",
        "ustekinumab, Stelara, Wezlana, Selarsdi, Pyzchiva, Otulfi, Imuldosa, Yesintek, "
        "Steqeyma, Starjemza",
    ),
    _drug(
        Group.IMMUNOSUPPRESSANT,
        "vedolizumab",
        "integrin antibody (biologic)",
        "vedolizumab, Entyvio",
    ),
    _drug(
        Group.IMMUNOSUPPRESSANT,
        "tocilizumab",
        IL6,
        "tocilizumab, Actemra, Tofidence, Tyenne, Avtozma",
    ),
    _drug(Group.IMMUNOSUPPRESSANT, "sarilumab", IL6, "sarilumab, Kevzara"),
    _drug(Group.IMMUNOSUPPRESSANT, "tofacitinib", JAK, "tofacitinib, Xeljanz, Xeljanz XR"),
    _drug(Group.IMMUNOSUPPRESSANT, "baricitinib", JAK, "baricitinib, Olumiant"),
    _drug(Group.IMMUNOSUPPRESSANT, "upadacitinib", JAK, "upadacitinib, Rinvoq, Rinvoq LQ"),
    _drug(Group.IMMUNOSUPPRESSANT, "abrocitinib", JAK, "abrocitinib, Cibinqo"),
    _drug(Group.IMMUNOSUPPRESSANT, "ritlecitinib", JAK, "ritlecitinib, Litfulo"),
    _drug(Group.IMMUNOSUPPRESSANT, "deuruxolitinib", JAK, "deuruxolitinib, Leqselvi"),
    _drug(
        Group.IMMUNOSUPPRESSANT,
        "ruxolitinib",
        JAK,
        "ruxolitinib, Jakafi",
        systemic_only=True,
    ),
    _drug(
        Group.IMMUNOSUPPRESSANT,
        "fingolimod",
        S1P,
        "fingolimod, Gilenya, Tascenso, Tascenso ODT",
    ),
    _drug(Group.IMMUNOSUPPRESSANT, "siponimod", S1P, "siponimod, Mayzent"),
    _drug(Group.IMMUNOSUPPRESSANT, "ozanimod", S1P, "ozanimod, Zeposia"),
    _drug(Group.IMMUNOSUPPRESSANT, "ponesimod", S1P, "ponesimod, Ponvory"),
    _drug(Group.IMMUNOSUPPRESSANT, "etrasimod", S1P, "etrasimod, Velsipity"),
    # Systemic corticosteroids at any dose. Prednisolone also comes as eye drops and cortisone
    # is what "cortisone cream" means, so both are systemic_only; their tablets still count.
    _drug(
        Group.IMMUNOSUPPRESSANT,
        "prednisone",
        STEROID,
        "prednisone, Deltasone, Rayos, Prednisone Intensol",
    ),
    _drug(
        Group.IMMUNOSUPPRESSANT,
        "prednisolone",
        STEROID,
        "prednisolone, Orapred, Orapred ODT, Millipred, Pediapred, Veripred",
        systemic_only=True,
    ),
    _drug(
        Group.IMMUNOSUPPRESSANT,
        "methylprednisolone",
        STEROID,
        "methylprednisolone, Medrol, Medrol Dosepak, Solu-Medrol, Depo-Medrol",
    ),
    _drug(
        Group.IMMUNOSUPPRESSANT,
        "dexamethasone",
        STEROID,
        "dexamethasone, Decadron, Hemady, TaperDex, Dexpak, Dexamethasone Intensol",
        systemic_only=True,
    ),
    _drug(
        Group.IMMUNOSUPPRESSANT,
        "hydrocortisone",
        STEROID,
        "hydrocortisone, Cortef, Solu-Cortef, Alkindi, Alkindi Sprinkle",
        systemic_only=True,
    ),
    _drug(Group.IMMUNOSUPPRESSANT, "cortisone", STEROID, "cortisone", systemic_only=True),
    _drug(
        Group.IMMUNOSUPPRESSANT,
        "budesonide",
        STEROID,
        "budesonide, Entocort, Entocort EC, Uceris, Tarpeyo, Ortikos, Eohilia",
        systemic_only=True,
    ),
    _drug(Group.IMMUNOSUPPRESSANT, "deflazacort", STEROID, "deflazacort, Emflaza"),
    _drug(
        Group.IMMUNOSUPPRESSANT,
        "triamcinolone",
        STEROID,
        "triamcinolone, Kenalog, Zilretta",
        systemic_only=True,
    ),
    _drug(
        Group.IMMUNOSUPPRESSANT,
        "betamethasone",
        STEROID,
        "betamethasone, Celestone, Celestone Soluspan",
        systemic_only=True,
    ),
    _drug(Group.IMMUNOSUPPRESSANT, "fludrocortisone", STEROID, "fludrocortisone, Florinef"),
)

# "thyroid" alone (thyroid cancer, thyroid nodule) and "levo" (levofloxacin, levocetirizine)
# are left out; "T3" and "T4" in a medication list are the hormones.
THYROID_REPLACEMENTS = (
    _drug(
        Group.THYROID_REPLACEMENT,
        "levothyroxine",
        "thyroid hormone (T4)",
        "levothyroxine, levothyroxine sodium, L-thyroxine, thyroxine, T4, Synthroid, Levoxyl, "
        "Unithroid, Tirosint, Tirosint-SOL, Euthyrox, Levo-T, Levothroid, Thyquidity, Ermeza",
    ),
    _drug(
        Group.THYROID_REPLACEMENT,
        "liothyronine",
        "thyroid hormone (T3)",
        "liothyronine, liothyronine sodium, T3, Cytomel, Triostat",
    ),
    _drug(
        Group.THYROID_REPLACEMENT,
        "desiccated thyroid",
        "thyroid extract (T4 and T3)",
        "desiccated thyroid, natural desiccated thyroid, NDT, thyroid extract, porcine thyroid, "
        "thyroid USP, Armour, Armour Thyroid, Armor Thyroid, NP Thyroid, Nature-Throid, "
        "WP Thyroid, Westhroid, Adthyza",
    ),
    _drug(Group.THYROID_REPLACEMENT, "liotrix", "thyroid hormone (T4 and T3)", "liotrix, Thyrolar"),
)

# For allergy lists. Suboxone, Zubsolv, Bunavail (buprenorphine with naloxone) are left out: an
# allergy to them is not taken as a naloxone allergy unless naloxone is written. Contrave
# (naltrexone with bupropion) is kept: its naltrexone is absorbed whole, so the reaction may
# have been to naltrexone. Embeda and Troxyca hold naltrexone sequestered: left out.
OPIOID_ANTAGONISTS = (
    _drug(
        Group.OPIOID_ANTAGONIST,
        "naltrexone",
        "opioid antagonist",
        "naltrexone, naltrexone HCl, ReVia, Depade, Vivitrol, Contrave, LDN, ULDN, VLDN, "
        "low-dose naltrexone, low dose naltrexone",
    ),
    _drug(
        Group.OPIOID_ANTAGONIST,
        "naloxone",
        "opioid antagonist",
        "naloxone, Narcan, Kloxxado, Zimhi, Evzio, RiVive",
    ),
)

VOCABULARY: tuple[Drug, ...] = (
    *OPIOIDS,
    *PERIPHERAL_OPIOIDS,
    *IMMUNOSUPPRESSANTS,
    *THYROID_REPLACEMENTS,
    *OPIOID_ANTAGONISTS,
)

# A name's last word may carry a plural or a glued release suffix ("Percocets", "morphineSR").
RELEASE_SUFFIXES = ("s", "er", "sr", "cr", "ir", "xr", "xl", "la", "dr", "cd", "ds", "odt")
MISSPELLING_MIN_LETTERS = 8  # shorter names are too close to other words to forgive a typo
NEGATION_BEFORE = frozenset({"non", "no", "not", "without", "denies"})
NEGATION_AFTER = frozenset(
    {"free", "antagonist", "antagonists", "blocker", "blockers", "none", "denied"}
)  # "Opioids: none"
# Words that make an entry a local (skin, eye, nose, lung, rectal) use of a systemic_only drug;
# a "%" strength does too ("hydrocortisone 2.5%").
LOCAL_USE = frozenset(
    _listed(
        "cream, creams, ointment, oint, lotion, gel, foam, topical, topically, skin, scalp, "
        "shampoo, paste, inhaler, inhaled, inhalation, inh, puff, puffs, nebulizer, nebulized, "
        "neb, nebs, respules, hfa, mdi, nasal, intranasal, nose, spray, drop, drops, gtt, gtts, "
        "eye, eyes, ear, ears, ophthalmic, opthalmic, otic, emulsion, intravitreal, implant, "
        "rectal, rectally, enema, suppository, suppositories, mouthwash, rinse, vaginal"
    )
)

_ENTRY_BREAK = re.compile(r"[\r\n]|[,;](?![^()\r\n]*\))")  # not a comma inside parentheses
_SHORTHAND = (
    (re.compile(r"\bw/o\b"), " without "),
    (re.compile(r"\bw/"), " with "),
    (re.compile("&"), " and "),
)
_WORD = re.compile(r"[^\W\d_]+|\d+|#")  # letters, digits, or "#"


def mentions(text: str, group: Group) -> list[Mention]:
    """The drugs of `group` that `text` names, in order of first appearance, each drug once."""
    matcher = _matcher(group)
    found: dict[Drug, Mention] = {}
    for entry in _entries(text or ""):
        words = _words(entry)
        local_use = "%" in entry or not LOCAL_USE.isdisjoint(words)
        for drug in matcher.drugs_in(words):
            if not (drug.systemic_only and local_use):
                found.setdefault(drug, Mention(drug, entry))
    return list(found.values())


def _entries(text: str) -> Iterator[str]:
    for entry in _ENTRY_BREAK.split(text):
        if entry.strip():
            yield entry.strip()


def _words(text: str) -> tuple[str, ...]:
    """'Tylenol w/ codeine #3' -> ('tylenol', 'with', 'codeine', '#', '3')."""
    text = text.casefold()
    for pattern, replacement in _SHORTHAND:
        text = pattern.sub(replacement, text)
    return tuple(_WORD.findall(text))


def _bare_forms(word: str) -> tuple[str, ...]:
    """'percocets' -> ('percocets', 'percocet'): the word, and the word less a suffix."""
    forms = [word]
    if word.isalpha():
        for suffix in RELEASE_SUFFIXES:
            if word.endswith(suffix) and len(word) - len(suffix) >= 3:
                forms.append(word.removesuffix(suffix))
    return tuple(forms)


@dataclass(frozen=True)
class _Matcher:
    names_by_first_word: dict[str, tuple[tuple[tuple[str, ...], Drug], ...]]  # longest first
    misspellable: dict[str, Drug]  # one-word names of MISSPELLING_MIN_LETTERS letters or more
    misspellable_names: tuple[str, ...]
    known_words: frozenset[str]  # every word of every name: never read as a misspelling

    def drugs_in(self, words: tuple[str, ...]) -> Iterator[Drug]:
        start = 0
        while start < len(words):
            match = self._match_at(words, start)
            if match is None:
                start += 1
                continue
            drug, end = match
            before = words[start - 1] if start else ""
            after = words[end] if end < len(words) else ""
            if before not in NEGATION_BEFORE and after not in NEGATION_AFTER:
                yield drug
            start = end  # a negated name is skipped whole: "no Tylenol with codeine"

    def _match_at(self, words: tuple[str, ...], start: int) -> tuple[Drug, int] | None:
        forms = _bare_forms(words[start])
        for form in forms:
            for name, drug in self.names_by_first_word.get(form, ()):
                end = start + len(name)
                last_word_fits = end <= len(words) and name[-1] in _bare_forms(words[end - 1])
                if last_word_fits and words[start : end - 1] == name[:-1]:
                    return drug, end
        too_short = len(words[start]) < MISSPELLING_MIN_LETTERS - 1  # one letter may be missing
        if too_short or not words[start].isalpha() or self.known_words.intersection(forms):
            return None
        for form in forms:
            typo = process.extractOne(
                form, self.misspellable_names, scorer=DamerauLevenshtein.distance, score_cutoff=1
            )
            if typo is not None:  # (name, distance, index)
                return self.misspellable[typo[0]], start + 1
        return None


@functools.cache
def _matcher(group: Group) -> _Matcher:
    by_first_word: dict[str, list[tuple[tuple[str, ...], Drug]]] = {}
    misspellable: dict[str, Drug] = {}
    for drug in VOCABULARY:
        if drug.group != group:
            continue
        for name in dict.fromkeys(_words(spelling) for spelling in drug.names):
            by_first_word.setdefault(name[0], []).append((name, drug))
            if len(name) == 1 and name[0].isalpha() and len(name[0]) >= MISSPELLING_MIN_LETTERS:
                misspellable[name[0]] = drug
    return _Matcher(
        names_by_first_word={
            word: tuple(sorted(names, key=lambda named: -len(named[0])))
            for word, names in by_first_word.items()
        },
        misspellable=misspellable,
        misspellable_names=tuple(misspellable),
        known_words=_known_words(),
    )


@functools.cache
def _known_words() -> frozenset[str]:
    return frozenset(word for drug in VOCABULARY for name in drug.names for word in _words(name))
