DROP TABLE control_actions;
DROP TABLE control_flags;
DROP TABLE account_controls;
