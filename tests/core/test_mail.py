from email import message_from_bytes, policy

from django.core.mail import EmailMessage

from core.mail import EmlFileBackend


def test_each_message_is_one_eml_file(tmp_path):
    backend = EmlFileBackend(file_path=tmp_path / "mail")
    messages = [
        EmailMessage("First", "Body one", "portal@pharmacy.test", ["a@example.test"]),
        EmailMessage("Second", "Body two", "portal@pharmacy.test", ["b@example.test"]),
    ]

    assert backend.send_messages(messages) == 2

    files = sorted((tmp_path / "mail").glob("*.eml"))
    assert len(files) == 2
    parsed = sorted(
        (message_from_bytes(f.read_bytes(), policy=policy.default) for f in files),
        key=lambda m: m["Subject"],
    )
    assert [(m["Subject"], m["To"], m.get_content().strip()) for m in parsed] == [
        ("First", "a@example.test", "Body one"),
        ("Second", "b@example.test", "Body two"),
    ]
