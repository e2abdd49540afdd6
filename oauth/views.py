from maintenance.views import TaskView


class CleanupPKCEView(TaskView):
    task_name = "pkce_cleanup"


class CleanupSessionsView(TaskView):
    task_name = "oauth_session_cleanup"
