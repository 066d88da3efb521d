"""Admin page: live worker health, queues, traffic and operator actions."""

from webui import admin_view

admin_view.render()
