from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("orchestration", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="testrun",
            name="dispatched_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="testrun",
            name="claimed_by",
            field=models.CharField(blank=True, max_length=120),
        ),
    ]
