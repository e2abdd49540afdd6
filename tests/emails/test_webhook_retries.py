"""ESP webhook retries racing each other: one notification delivered several times at the
same moment over real HTTP (the live server's threads) is stored and acted on once."""

from __future__ import annotations

import json
import threading
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from emails.models import EmailEvent, EmailSuppression
from tests.emails.test_webhooks import SECRET, SES, SES_BOUNCE, basic, sns


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_same_notification_delivered_concurrently_is_stored_once(live_server, settings):
    """SNS and Postmark may deliver one notification twice at the same moment: four
    simultaneous posts of one SES bounce over real HTTP store each recipient's event once
    and suppress each address once, and all four get 200 (so nobody retries again)."""
    settings.ANYMAIL = {"WEBHOOK_SECRET": SECRET}
    message = sns(SES_BOUNCE)
    body = json.dumps(message).encode()
    headers = {
        "Content-Type": "text/plain; charset=UTF-8",
        "x-amz-sns-message-id": message["MessageId"],
        "x-amz-sns-message-type": "Notification",
        "Authorization": basic(SECRET)["HTTP_AUTHORIZATION"],
    }
    start = threading.Barrier(4)

    def deliver() -> int:
        url = f"{live_server.url}{SES}"  # http://127.0.0.1:...
        request = urllib.request.Request(url, body, headers)  # noqa: S310
        start.wait()
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return response.status

    with ThreadPoolExecutor(4) as pool:
        codes = list(pool.map(lambda _: deliver(), range(4)))

    assert codes == [200] * 4
    assert EmailEvent.objects.count() == 2
    assert sorted(EmailSuppression.objects.values_list("address", flat=True)) == [
        "ann.lee@example.test",
        "bob@example.test",
    ]
