"""Master formulation records refuse what USP <795> and the LDN rules forbid: a BUD category
that does not fit the dosage form, storage that contradicts the category, and calcium carbonate
or slow-release excipients in a capsule; when drafted, when approved and in the admin."""

import re
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from orders.models import (
    Formulation,
    FormulationIngredient,
    FormulationVersion,
    FormulationVersionStatus,
)
from pharmacy import formulations
from pharmacy.formulations import (
    SOURCE_LDN_TRUST,
    capsule_excipient_problems,
    formulation_record_problems,
)
from tests.factories import FormulationVersionFactory, IngredientFactory, StaffFactory

ROOM_OR_FRIDGE = "Store at room temperature or in a refrigerator"
CHECKS = ["Volume within 5 % of target", "Appearance and odour", "Label check"]


# --- Capsule excipients (pure) ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "codes"),
    [
        ("microcrystalline cellulose", []),
        ("Avicel PH-102 (microcrystalline cellulose)", []),
        ("naltrexone HCl", []),
        ("magnesium stearate", []),
        ("croscarmellose sodium", []),
        ("sodium carboxymethylcellulose", []),
        ("gelatin capsule, size 3", []),
        # A hypromellose shell dissolves at once: only the fill's matrix slows the release.
        ("hypromellose capsule shell, size 3", []),
        ("HPMC capsules (vegetarian), size 3", []),
        ("calcium carbonate", ["ingredients.calcium_carbonate"]),
        ("Calcium Carbonate USP, heavy", ["ingredients.calcium_carbonate"]),
        ("CaCO3", ["ingredients.calcium_carbonate"]),
        ("slow-release filler", ["ingredients.slow_release"]),
        ("sustained release base", ["ingredients.slow_release"]),
        ("Extended-Release excipient blend", ["ingredients.slow_release"]),
        ("controlled release matrix", ["ingredients.slow_release"]),
        ("Kollidon SR", ["ingredients.slow_release"]),
        ("enteric coating polymer", ["ingredients.slow_release"]),
        ("DRcaps capsule shell, size 3", ["ingredients.slow_release"]),
        ("Methocel K100M Premium CR", ["ingredients.slow_release"]),  # one problem a name
        ("Methocel E4M", ["ingredients.release_matrix"]),
        ("methylcellulose", ["ingredients.release_matrix"]),
        ("hypromellose", ["ingredients.release_matrix"]),
        ("HPMC powder", ["ingredients.release_matrix"]),
        ("hydroxypropyl methylcellulose", ["ingredients.release_matrix"]),
        ("hypromellose K15M for capsules", ["ingredients.release_matrix"]),  # a matrix grade
        ("ethylcellulose", ["ingredients.release_matrix"]),
    ],
)
def test_capsule_excipients(name, codes):
    problems = capsule_excipient_problems([name])

    assert [p.code for p in problems] == codes
    assert {(p.field, p.source) for p in problems} <= {("ingredients", SOURCE_LDN_TRUST)}


def test_capsule_excipient_messages_name_each_ingredient():
    names = ["naltrexone HCl", "calcium carbonate", "Kollidon SR", "hypromellose"]

    assert [p.message for p in capsule_excipient_problems(names)] == [
        "Calcium carbonate cannot go into an LDN capsule: it hurts the absorption of naltrexone.",
        "Kollidon SR cannot go into an LDN capsule: LDN is never slow-release, nor otherwise"
        " modified release.",
        "Hypromellose cannot go into an LDN capsule: in the fill it swells into a gel that slows"
        " the release, and LDN is never slow-release.",
    ]


@pytest.mark.parametrize(
    ("dosage_form", "changes", "codes"),
    [
        ("capsule", {}, []),
        ("capsule", {"ingredient_names": ["calcium carbonate"]}, ["ingredients.calcium_carbonate"]),
        (
            "capsule",
            {"bud_category": "aqueous_unpreserved"},
            ["bud.solid_form", "storage.refrigeration_required"],
        ),
        ("capsule", {"storage": "Do not refrigerate"}, ["storage.contradicts_category"]),
        # Excipients are a capsule rule: a cream may hold a preserved base with hypromellose.
        ("topical_cream", {"bud_category": "aqueous_preserved", "ingredient_names": ["HPMC"]}, []),
        (
            "oral_liquid",
            {"bud_category": "aqueous_unpreserved", "ingredient_names": ["calcium carbonate"]},
            ["storage.refrigeration_required"],
        ),
    ],
)
def test_record_problems_gather_every_rule(dosage_form, changes, codes):
    record = {
        "dosage_form": dosage_form,
        "bud_category": "nonaqueous_solid",
        "water_activity": None,
        "antimicrobial_preservative": True,
        "storage": ROOM_OR_FRIDGE,
        "ingredient_names": ["naltrexone HCl", "microcrystalline cellulose"],
        **changes,
    }

    assert [p.code for p in formulation_record_problems(**record)] == codes


# --- The services -------------------------------------------------------------------------------


@pytest.fixture
def liquid():
    return Formulation.objects.get(dosage_form="oral_liquid")


@pytest.fixture
def capsule():
    return Formulation.objects.get(dosage_form="capsule", strength_mg=Decimal("1.5"))


@pytest.fixture
def liquid_ingredients(db):
    return [
        (IngredientFactory(name="naltrexone HCl"), Decimal("1")),
        (IngredientFactory(name="oral vehicle", kind="excipient", unit="mL"), Decimal("1")),
    ]


def liquid_record(**changes):
    return {
        "bud_category": "aqueous_preserved",
        "antimicrobial_preservative": True,
        "water_activity": None,
        "storage": ROOM_OR_FRIDGE,
        "container": "Amber bottle with oral syringe",
        "compounding_instructions": "Dissolve, make up to volume, mix.",
        "qc_checks": CHECKS,
        "auxiliary_labels": [],
        **changes,
    }


def record_rows():
    return (
        FormulationVersion.objects.count(),
        FormulationVersion.history.count(),
        FormulationIngredient.objects.count(),
    )


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("changes", "field", "code"),
    [
        ({"antimicrobial_preservative": False}, "bud_category", "bud.preservative_missing"),
        ({"bud_category": "nonaqueous_solid"}, "bud_category", "bud.liquid_not_solid"),
        ({"bud_category": "nonaqueous_liquid"}, "bud_category", "bud.water_activity_missing"),
        (
            {"bud_category": "nonaqueous_liquid", "water_activity": Decimal("0.72")},
            "bud_category",
            "bud.water_activity_aqueous",
        ),
        ({"bud_category": "aqueous_unpreserved"}, "storage", "storage.refrigeration_required"),
        ({"storage": "Keep frozen"}, "storage", "storage.freezing"),
    ],
)
def test_a_refused_draft_writes_nothing(
    liquid, liquid_ingredients, pharmacist, changes, field, code
):
    before = record_rows()

    with pytest.raises(ValidationError) as refused:
        formulations.formulation_version_draft(
            formulation=liquid,
            actor=pharmacist,
            ingredients=liquid_ingredients,
            **liquid_record(**changes),
        )

    assert {
        name: [e.code for e in errors] for name, errors in refused.value.error_dict.items()
    } == {field: [code]}
    assert record_rows() == before


@pytest.mark.django_db
def test_a_draft_names_each_field_with_its_problems(capsule, pharmacist):
    before = capsule.versions.count()
    ingredients = [
        (IngredientFactory(name="naltrexone HCl"), Decimal("1.5")),
        (IngredientFactory(name="calcium carbonate", kind="excipient"), Decimal("148.5")),
    ]

    with pytest.raises(ValidationError) as refused:
        formulations.formulation_version_draft(
            formulation=capsule,
            actor=pharmacist,
            ingredients=ingredients,
            **liquid_record(storage="Do not refrigerate"),
        )

    assert refused.value.message_dict == {
        "bud_category": [
            "Capsules are nonaqueous solids: their BUD category is nonaqueous solid (180 days),"
            " not aqueous, preserved (35 days)."
        ],
        "storage": [
            '"Do not refrigerate" contradicts the storage of aqueous, preserved (35 days):'
            " USP <795> allows room temperature or a refrigerator, and the label says so."
        ],
        "ingredients": [
            "Calcium carbonate cannot go into an LDN capsule: it hurts the absorption of"
            " naltrexone."
        ],
    }
    assert capsule.versions.count() == before


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("record", "dosage_form"),
    [
        ({"bud_category": "aqueous_preserved", "antimicrobial_preservative": True}, "oral_liquid"),
        ({"bud_category": "aqueous_unpreserved", "storage": "Refrigerate"}, "oral_liquid"),
        (
            {"bud_category": "nonaqueous_liquid", "water_activity": Decimal("0.45")},
            "sublingual_drops",
        ),
        ({"bud_category": "nonaqueous_solid", "water_activity": Decimal("0.3")}, "topical_cream"),
    ],
)
def test_a_fitting_draft_is_written_with_its_evidence(
    liquid_ingredients, pharmacist, record, dosage_form
):
    formulation = Formulation.objects.get(dosage_form=dosage_form)
    fields = liquid_record(**{"antimicrobial_preservative": False, **record})

    draft = formulations.formulation_version_draft(
        formulation=formulation, actor=pharmacist, ingredients=liquid_ingredients, **fields
    )

    draft.refresh_from_db()
    assert (draft.status, draft.bud_category) == ("draft", record["bud_category"])
    assert draft.water_activity == fields["water_activity"]
    assert draft.antimicrobial_preservative == fields["antimicrobial_preservative"]


@pytest.fixture
def approved_and_draft(liquid, liquid_ingredients):
    """The oral liquid's approved version 1 and a fitting draft version 2 by another
    pharmacist."""
    author = StaffFactory(group="Pharmacist")
    approved = FormulationVersionFactory(
        formulation=liquid,
        version=1,
        bud_category="aqueous_preserved",
        antimicrobial_preservative=True,
        author=author,
    )
    draft = formulations.formulation_version_draft(
        formulation=liquid, actor=author, ingredients=liquid_ingredients, **liquid_record()
    )
    return approved, draft


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("edit", "field", "code"),
    [
        ({"antimicrobial_preservative": False}, "bud_category", "bud.preservative_missing"),
        ({"bud_category": "nonaqueous_solid"}, "bud_category", "bud.liquid_not_solid"),
        ({"storage": "Store in the freezer"}, "storage", "storage.freezing"),
    ],
)
def test_a_draft_edited_badly_cannot_be_approved(approved_and_draft, pharmacist, edit, field, code):
    approved, draft = approved_and_draft
    FormulationVersion.objects.filter(pk=draft.pk).update(**edit)  # as a bad edit would leave it

    with pytest.raises(ValidationError) as refused:
        formulations.formulation_version_approve(version=draft, actor=pharmacist)

    assert {
        name: [e.code for e in errors] for name, errors in refused.value.error_dict.items()
    } == {field: [code]}
    draft.refresh_from_db()
    approved.refresh_from_db()
    assert (draft.status, draft.approved_by, approved.status) == ("draft", None, "approved")


@pytest.mark.django_db
def test_a_capsule_draft_given_calcium_carbonate_later_cannot_be_approved(capsule, pharmacist):
    author = StaffFactory(group="Pharmacist")
    draft = formulations.formulation_version_draft(
        formulation=capsule,
        actor=author,
        ingredients=[(IngredientFactory(name="naltrexone HCl"), Decimal("1.5"))],
        **liquid_record(bud_category="nonaqueous_solid", antimicrobial_preservative=False),
    )
    chalk = IngredientFactory(name="calcium carbonate", kind="excipient")
    draft.ingredients.create(ingredient=chalk, amount_per_unit=Decimal("148.5"))

    with pytest.raises(ValidationError) as refused:
        formulations.formulation_version_approve(version=draft, actor=pharmacist)

    assert refused.value.message_dict == {
        "ingredients": [
            "Calcium carbonate cannot go into an LDN capsule: it hurts the absorption of"
            " naltrexone."
        ]
    }
    draft.refresh_from_db()
    assert (draft.status, draft.approved_at) == (FormulationVersionStatus.DRAFT, None)


@pytest.mark.django_db
def test_a_draft_left_without_ingredients_cannot_be_approved(approved_and_draft, pharmacist):
    _approved, draft = approved_and_draft
    draft.ingredients.all().delete()

    with pytest.raises(ValidationError) as refused:
        formulations.formulation_version_approve(version=draft, actor=pharmacist)

    assert refused.value.message_dict == {
        "ingredients": ["A master formulation record lists at least one ingredient."]
    }
    draft.refresh_from_db()
    assert draft.status == FormulationVersionStatus.DRAFT


@pytest.mark.django_db
def test_a_fitting_draft_is_approved(approved_and_draft, pharmacist):
    approved, draft = approved_and_draft

    formulations.formulation_version_approve(version=draft, actor=pharmacist)

    draft.refresh_from_db()
    approved.refresh_from_db()
    assert (draft.status, approved.status) == ("approved", "superseded")


# --- The admin ----------------------------------------------------------------------------------


def admin_form_data(page) -> dict[str, str]:
    """What the browser posts back from an admin change page left as it is: the form's fields
    and every inline formset with its management form."""
    forms = [page.context["adminform"].form]
    for inline in page.context["inline_admin_formsets"]:
        forms.append(inline.formset.management_form)
        forms.extend(inline.formset.forms)
    data = {}
    for form in forms:
        for name in form.fields:
            value = form[name].value()
            if value is None or value is False:
                continue
            data[form.add_prefix(name)] = "on" if value is True else str(value)
    return data


@pytest.fixture
def draft_capsule(capsule):
    """A draft capsule record by another pharmacist: naltrexone and the usual filler."""
    draft = FormulationVersionFactory(
        formulation=capsule,
        status=FormulationVersionStatus.DRAFT,
        author=StaffFactory(group="Pharmacist"),
    )
    draft.ingredients.create(
        ingredient=IngredientFactory(name="naltrexone HCl"), amount_per_unit=Decimal("1.5")
    )
    draft.ingredients.create(
        ingredient=IngredientFactory(name="microcrystalline cellulose", kind="excipient"),
        amount_per_unit=Decimal("148.5"),
    )
    return draft


def change_url(version):
    return reverse("admin:orders_formulationversion_change", args=[version.pk])


@pytest.mark.django_db
def test_the_admin_shows_water_activity_and_preservative(pharmacist_client, draft_capsule):
    page = pharmacist_client.get(change_url(draft_capsule))

    fields = page.context["adminform"].form.fields
    assert fields["water_activity"].help_text == (
        "Measured water activity (aw), if recorded: below 0.6 the preparation is nonaqueous"
        " (USP <795>)."
    )
    assert fields["antimicrobial_preservative"].label == "Contains an antimicrobial preservative"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        (
            {"bud_category": "aqueous_preserved", "antimicrobial_preservative": "on"},
            "bud_category",
            "Capsules are nonaqueous solids: their BUD category is nonaqueous solid (180 days),"
            " not aqueous, preserved (35 days).",
        ),
        (
            {"water_activity": "0.65"},
            "bud_category",
            "A water activity of 0.65 is 0.6 or above, so the preparation is aqueous (USP <795>):"
            " it cannot be nonaqueous solid (180 days).",
        ),
        (
            {"storage": "Keep frozen"},
            "storage",
            '"Keep frozen": no USP <795> category of nonsterile preparations is stored frozen;'
            " nonaqueous solid (180 days) is stored at room temperature or in a refrigerator.",
        ),
    ],
)
def test_the_admin_shows_a_record_problem_on_its_field(
    pharmacist_client, draft_capsule, changes, field, message
):
    data = admin_form_data(pharmacist_client.get(change_url(draft_capsule)))

    response = pharmacist_client.post(change_url(draft_capsule), {**data, **changes})

    assert response.status_code == 200
    assert response.context["adminform"].form.errors == {field: [message]}
    draft_capsule.refresh_from_db()
    assert (draft_capsule.bud_category, draft_capsule.storage, draft_capsule.water_activity) == (
        "nonaqueous_solid",
        ROOM_OR_FRIDGE,
        None,
    )


@pytest.mark.django_db
def test_the_admin_shows_a_forbidden_excipient_on_its_row(pharmacist_client, draft_capsule):
    data = admin_form_data(pharmacist_client.get(change_url(draft_capsule)))
    chalk = IngredientFactory(name="calcium carbonate", kind="excipient")
    filler_row = next(
        key.removesuffix("-ingredient")
        for key, value in data.items()
        if key.endswith("-ingredient")
        and value
        == str(
            draft_capsule.ingredients.get(
                ingredient__name="microcrystalline cellulose"
            ).ingredient_id
        )
    )

    response = pharmacist_client.post(
        change_url(draft_capsule), {**data, f"{filler_row}-ingredient": str(chalk.pk)}
    )

    assert response.status_code == 200
    [inline] = response.context["inline_admin_formsets"]
    row_errors = [form.errors for form in inline.formset.forms if form.errors]
    assert row_errors == [
        {
            "ingredient": [
                "Calcium carbonate cannot go into an LDN capsule: it hurts the absorption of"
                " naltrexone."
            ]
        }
    ]
    assert sorted(draft_capsule.ingredients.values_list("ingredient__name", flat=True)) == [
        "microcrystalline cellulose",
        "naltrexone HCl",
    ]


@pytest.mark.django_db
def test_the_admin_saves_a_fitting_edit(pharmacist_client, draft_capsule):
    data = admin_form_data(pharmacist_client.get(change_url(draft_capsule)))

    response = pharmacist_client.post(
        change_url(draft_capsule),
        {**data, "water_activity": "0.35", "storage": f"{ROOM_OR_FRIDGE}; protect from light"},
    )

    assert response.status_code == 302
    draft_capsule.refresh_from_db()
    assert draft_capsule.water_activity == Decimal("0.35")
    assert draft_capsule.storage == f"{ROOM_OR_FRIDGE}; protect from light"


@pytest.mark.django_db
def test_new_version_from_this_copies_the_evidence(pharmacist_client, approved_and_draft):
    approved, _draft = approved_and_draft
    approved.ingredients.create(
        ingredient=IngredientFactory(name="naltrexone HCl"), amount_per_unit=Decimal("1")
    )
    FormulationVersion.objects.filter(pk=approved.pk).update(water_activity=Decimal("0.95"))

    answer = pharmacist_client.post(
        reverse("admin:orders_formulationversion_changelist"),
        {"action": "new_version", "_selected_action": [approved.pk]},
    )

    copy = approved.formulation.versions.get(version=3)
    assert answer["Location"] == change_url(copy)  # the new draft opens, to edit
    assert (copy.status, copy.water_activity, copy.antimicrobial_preservative) == (
        "draft",
        Decimal("0.95"),
        True,
    )


@pytest.mark.django_db
def test_the_admin_edits_qc_checks_and_auxiliary_labels_one_per_line(
    pharmacist_client, draft_capsule
):
    page = pharmacist_client.get(change_url(draft_capsule))
    data = admin_form_data(page)
    assert data["qc_checks"] == "\n".join(draft_capsule.qc_checks)  # lines, never JSON
    assert "[&quot;" not in page.content.decode()

    response = pharmacist_client.post(change_url(draft_capsule), {
        **data, "qc_checks": "  Weight variation \n\n Appearance\n",
        "auxiliary_labels": "Take at bedtime\nMay cause vivid dreams",
    })  # fmt: skip

    assert response.status_code == 302
    draft_capsule.refresh_from_db()
    assert draft_capsule.qc_checks == ["Weight variation", "Appearance"]
    assert draft_capsule.auxiliary_labels == ["Take at bedtime", "May cause vivid dreams"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("One\nTwo\nThree\nFour", "At most 3 lines (this has 4)."),
        ("Fine\n" + "x" * 61, "Line 2 is 61 characters long: at most 60."),
    ],
)
def test_too_many_or_too_long_auxiliary_labels_are_refused_on_the_field(
    pharmacist_client, draft_capsule, typed, message
):
    before = draft_capsule.auxiliary_labels
    data = admin_form_data(pharmacist_client.get(change_url(draft_capsule)))

    response = pharmacist_client.post(change_url(draft_capsule),
                                      {**data, "auxiliary_labels": typed})  # fmt: skip

    assert response.context["adminform"].form.errors == {"auxiliary_labels": [message]}
    draft_capsule.refresh_from_db()
    assert draft_capsule.auxiliary_labels == before


@pytest.mark.django_db
def test_ingredient_amounts_show_their_units(pharmacist_client, draft_capsule):
    page = pharmacist_client.get(change_url(draft_capsule)).content.decode()
    units = re.findall(r'<td class="field-unit">\s*<p>([^<]*)</p>', page)
    assert units == ["mg per capsule", "mg per capsule", ""]  # and the empty row to add one
