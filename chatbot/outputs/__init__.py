"""What goes back beyond text: replies read aloud."""
