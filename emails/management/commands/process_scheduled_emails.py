from emails.tasks import SCHEDULED_EMAILS
from maintenance.management.base import TaskCommand


class Command(TaskCommand):
    task = SCHEDULED_EMAILS
