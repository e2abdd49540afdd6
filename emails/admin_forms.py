"""Forms of the emails admin: a suppression added by hand, the reason for removing one,
and the choice of user and email type for a preview."""

from __future__ import annotations

from django import forms
from django.contrib.admin import helpers
from django.contrib.auth import get_user_model
from django.core.validators import validate_email
from django.db.models import Q

from emails.models import EmailSuppression, EmailType, normalize_address


class SuppressionForm(forms.ModelForm):
    class Meta:
        model = EmailSuppression
        fields = ["address", "reason"]
        help_texts = {
            "address": "Compared case-insensitively; stored lower-case.",
            "reason": "Why nothing may be sent to this address (kept with the entry).",
        }

    def clean_address(self) -> str:
        address = normalize_address(self.cleaned_data["address"])
        validate_email(address)
        if EmailSuppression.objects.of_address(address).exists():
            raise forms.ValidationError("This address is already on the suppression list.")
        return address

    def clean_reason(self) -> str:
        reason = self.cleaned_data["reason"].strip()
        if not reason:
            raise forms.ValidationError("Give a reason.")
        return reason


class SuppressionActionForm(helpers.ActionForm):
    reason = forms.CharField(
        required=False, max_length=500, label="Reason", help_text="Required to remove."
    )


class PreviewForm(forms.Form):
    user = forms.CharField(
        label="User", help_text="User id, username or email address.", max_length=254
    )
    email_type = forms.ChoiceField(label="Email", choices=EmailType.choices)

    def clean_user(self):
        given = self.cleaned_data["user"].strip()
        users = get_user_model().objects.all()
        match = Q(username=given) | Q(email__iexact=given)
        if given.isdigit():
            match |= Q(pk=int(given))
        user = users.filter(match).order_by("pk").first()
        if user is None:
            raise forms.ValidationError(f"No user with id, username or email {given!r}.")
        return user
