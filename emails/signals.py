"""Scheduling the onboarding series whenever a user is created, however it is saved."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db.models.signals import post_save
from django.dispatch import receiver

from emails.scheduling import onboarding_enabled, schedule_onboarding


@receiver(post_save, sender=get_user_model(), dispatch_uid="emails.schedule_on_user_created")
def schedule_on_user_created(sender, instance, created: bool, raw: bool = False, **kwargs) -> None:
    """Signup, admin, createsuperuser; fixtures (`raw`) aside."""
    if created and not raw and onboarding_enabled():
        schedule_onboarding(instance)
