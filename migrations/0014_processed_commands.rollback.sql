DROP TABLE processed_commands;
