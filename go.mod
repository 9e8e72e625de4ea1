module github.com/verbatimhq/verbatim

go 1.26
