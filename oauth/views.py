from maintenance.views import TaskView


class CleanupPKCEView(TaskView):
    task_name = "pkce_cleanup"
