"""The diff viewer's pipeline: parse → lines → highlight whole files → chunks → fragments."""
