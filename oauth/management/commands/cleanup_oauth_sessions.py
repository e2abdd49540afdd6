from maintenance.management.base import TaskCommand
from oauth.tasks import OAUTH_SESSION_CLEANUP


class Command(TaskCommand):
    task = OAUTH_SESSION_CLEANUP
