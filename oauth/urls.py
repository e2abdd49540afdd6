from django.urls import path

from . import views

urlpatterns = [
    path("cleanup-pkce", views.CleanupPKCEView.as_view(), name="cleanup-pkce"),
    path("cleanup-sessions", views.CleanupSessionsView.as_view(), name="cleanup-sessions"),
]
