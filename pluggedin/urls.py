from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("maintenance.urls")),
    path("emails/", include("emails.unsubscribe_urls")),
    # The ESPs' delivery webhooks: anymail's own views, closed without ANYMAIL_WEBHOOK_SECRET.
    path("anymail/", include("emails.webhook_urls")),
]
