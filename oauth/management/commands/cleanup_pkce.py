from maintenance.management.base import TaskCommand
from oauth.tasks import PKCE_CLEANUP


class Command(TaskCommand):
    task = PKCE_CLEANUP
