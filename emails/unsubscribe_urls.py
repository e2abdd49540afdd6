"""Public (untokened) email pages, mounted at `/emails/`."""

from django.urls import path

from emails import views

app_name = "emails"

urlpatterns = [
    path("unsubscribe/<str:token>", views.unsubscribe, name="unsubscribe"),
]
