"""Auth lifecycle tests: an API of their own with e-mail confirmations on, delivering to a mail
catcher of their own, read back through its Mailpit API as a frontend developer would."""

from __future__ import annotations

import pytest
from auth_helpers import Mailbox

from koepon.localstack.api.testing import running_api
from koepon.localstack.mail.testing import running_mail


@pytest.fixture(scope="module")
def mail():
    with running_mail() as (url, smtp_port):
        yield Mailbox(url, smtp_port)


@pytest.fixture(scope="module")
def api(seeded_db_url, mail):
    with running_api(seeded_db_url, auth={"enable_confirmations": True, "smtp_port": mail.smtp_port,
                                          "email_sent_per_hour": 10_000, "max_frequency": 0.0,
                                          "additional_redirect_urls": ("http://127.0.0.1:3000/**",
                                                                       "koepon://callback")}) as url:
        yield url
