package catalog

//go:generate go run ./gencatalog -in ../../../shared/data/app-catalog-v2fly.json -categories ../../../shared/data/app-categories-v2fly.json -out catalog.tsv
//go:generate cp ../../../shared/data/app-catalog-v2fly.LICENSE.txt LICENSE.v2fly.txt
