"""`manage.py seed_users N PASSWORD`: N users named bench-0 … bench-(N-1), hashed by the
configured argon2id (the same cost as every later sign-in), in one transaction."""
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction


class Command(BaseCommand):
    help = "Creates N bench users with one password"

    def add_arguments(self, parser):
        parser.add_argument("count", type=int)
        parser.add_argument("password")

    def handle(self, *args, count, password, **options):
        User = get_user_model()
        with transaction.atomic():
            for i in range(count):
                User.objects.create_user(username=f"bench-{i}", password=password)
        self.stdout.write(f"created {count} users")
