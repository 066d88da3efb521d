"""Everything the Streamlit pages use: controller client, boot, chat and admin views."""
