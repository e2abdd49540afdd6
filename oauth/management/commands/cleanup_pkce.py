from maintenance.commands import CleanupCommand


class Command(CleanupCommand):
    help = (
        "Delete expired OAuth PKCE states (task pkce_cleanup). Safe to run from cron at any "
        "frequency: overlapping runs skip. Exits 1 on failure."
    )
    task_name = "pkce_cleanup"
