DROP TABLE store_marker;
