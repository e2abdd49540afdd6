from django.urls import path

from . import views

urlpatterns = [
    path(
        "process-scheduled",
        views.ProcessScheduledEmailsView.as_view(),
        name="process-scheduled",
    ),
]
