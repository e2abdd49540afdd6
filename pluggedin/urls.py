from django.contrib import admin
from django.urls import include, path

from maintenance.views import healthz, status

urlpatterns = [
    path("admin/", admin.site.urls),
    path("healthz", healthz, name="healthz"),
    path("api/maintenance/status", status, name="maintenance-status"),
    path("api/oauth/", include("oauth.urls")),
    path("api/emails/", include("emails.urls")),
    path("emails/", include("emails.unsubscribe_urls")),
]
