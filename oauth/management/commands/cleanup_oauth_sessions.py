from maintenance.commands import CleanupCommand


class Command(CleanupCommand):
    help = (
        "Delete expired mcp-remote OAuth sessions (task oauth_session_cleanup). Safe to run "
        "from cron at any frequency: overlapping runs skip. Exits 1 on failure."
    )
    task_name = "oauth_session_cleanup"
