"""Wire format shared by the controller, the workers and the clients (DESIGN.md section 3)."""
