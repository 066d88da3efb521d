"""Chat page: pick a model, upload images, chat with streamed answers."""

from webui import chat_view

chat_view.render()
