"""Forms of the access-control pages; each error names what to fix."""

from __future__ import annotations

from django import forms

from accounts.models import AgentRole, Role

WORKSPACE_ROLE = ""  # the project-role choice meaning "no override"


class InviteForm(forms.Form):
    email = forms.EmailField(
        max_length=254,
        error_messages={
            "required": "Enter the email address to invite.",
            "invalid": "Enter a valid email address, like ada@example.com.",
        },
    )
    role = forms.ChoiceField(
        choices=Role.choices,
        initial=Role.READER,
        error_messages={
            "invalid_choice": "Choose one of the roles: admin, author, reviewer, reader."
        },
    )


class RoleForm(forms.Form):
    role = forms.ChoiceField(
        choices=Role.choices,
        error_messages={
            "required": "Choose a role.",
            "invalid_choice": "Choose one of the roles: admin, author, reviewer, reader.",
        },
    )


class ProjectRoleForm(forms.Form):
    """A member's role on one project; the members and projects are the workspace's."""

    member = forms.TypedChoiceField(
        coerce=int,
        error_messages={
            "required": "Choose the member.",
            "invalid_choice": "Choose a member of this workspace.",
        },
    )
    project = forms.ChoiceField(
        error_messages={
            "required": "Choose the project.",
            "invalid_choice": "Choose a project of this workspace.",
        }
    )
    role = forms.ChoiceField(
        required=False,
        choices=[(WORKSPACE_ROLE, "Workspace role (no override)"), *Role.choices],
        error_messages={"invalid_choice": "Choose a role, or the workspace role."},
    )

    def __init__(self, *args, members=(), projects=(), **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["member"].choices = [(m.user_id, m.user.username) for m in members]
        self.fields["project"].choices = [(str(p.code), p.name) for p in projects]


class TokenForm(forms.Form):
    name = forms.CharField(
        max_length=120,
        strip=True,
        error_messages={
            "required": "Give the token a name, such as the agent host it runs on.",
            "max_length": "The name is at most 120 characters.",
        },
    )
    role = forms.ChoiceField(
        choices=AgentRole.choices,
        error_messages={
            "required": "Choose the role the agent works as.",
            "invalid_choice": "Choose one of the agent roles.",
        },
    )
    project = forms.ChoiceField(
        required=False,
        error_messages={"invalid_choice": "Choose a project of this workspace, or none."},
    )

    def __init__(self, *args, projects=(), **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["project"].choices = [
            ("", "Every project"),
            *((str(p.code), p.name) for p in projects),
        ]


class SignUpForm(forms.Form):
    username = forms.CharField(max_length=150, error_messages={"required": "Choose a user name."})
    password = forms.CharField(
        widget=forms.PasswordInput, error_messages={"required": "Choose a password."}
    )
