"""PostgreSQL: the embedded server, migrations, and one SQL module per aggregate."""
